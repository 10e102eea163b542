package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openrealtime/realtime/internal/demo"
)

// apiCall sends a management API request; it returns status, headers and body.
func apiCall(t *testing.T, addr, method, path, token, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// tenantBody is a Supabase create-tenant body for p's database.
func tenantBody(t *testing.T, p *projectDB, secret string) string {
	t.Helper()
	u, err := url.Parse(p.url)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	if pw == "" {
		pw = "ignored-by-trust-auth" // Supabase requires one; the test cluster trusts local users
	}
	b, _ := json.Marshal(map[string]any{"tenant": map[string]any{
		"external_id": p.ref, "name": p.ref, "jwt_secret": secret, "max_concurrent_users": 50,
		"extensions": []map[string]any{{"type": "postgres_cdc_rls", "settings": map[string]any{
			"db_host": u.Hostname(), "db_port": u.Port(), "db_name": strings.TrimPrefix(u.Path, "/"),
			"db_user": u.User.Username(), "db_password": pw, "region": "local", "ssl_enforced": false,
		}}},
	}})
	return string(b)
}

// Supabase's management API: a bad token is 403 with an empty body; a
// tenant created with Supabase's body answers 201 + Location, streams
// without a restart and is listed without secrets; an invalid body is 422;
// a secret update closes that project's sockets only; the record survives
// a restart of the service (state file); delete is 204 and drops the slot.
func TestProjectsManagementAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, admin := startClusterAdmin(t, ctx)
	p := newProjectDB(t, c, admin, "api-made")
	other := newProjectDB(t, c, admin, "filed")

	dir := t.TempDir()
	file := filepath.Join(dir, "projects.yaml")
	if err := os.WriteFile(file, []byte("projects:\n"+other.entry("SECRET_FILED", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SECRET_FILED", other.keys.Secret)
	defKeys, err := demo.MakeKeys(demo.NewSecret(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	apiSecret := demo.NewSecret()
	apiKeys, err := demo.MakeKeys(apiSecret, time.Hour) // any claims signed with the API secret
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--jwt-secret", defKeys.Secret, "--projects", file, "--api-jwt-secret", apiSecret, "--admin-token", "adm", "--log-level", "debug"}
	s := launch(t, "", args...)
	waitProjectReady(t, s.addr, "filed")

	for _, tok := range []string{"", defKeys.Service, "wrong"} {
		if code, _, body := apiCall(t, s.addr, "GET", "/api/tenants", tok, ""); code != 403 || body != "" {
			t.Fatalf("token %q: %d %q", tok, code, body)
		}
	}
	code, hdr, body := apiCall(t, s.addr, "POST", "/api/tenants", apiKeys.Anon, tenantBody(t, p, p.keys.Secret))
	if code != 201 || hdr.Get("Location") != "/api/tenants/api-made" {
		t.Fatalf("create: %d %v %s", code, hdr, body)
	}
	for _, secret := range []string{p.keys.Secret, "db_password", "jwt_secret"} {
		if strings.Contains(body, secret) {
			t.Fatalf("create answer shows %s: %s", secret, body)
		}
	}
	if code, _, body := apiCall(t, s.addr, "POST", "/api/tenants", "adm", tenantBody(t, p, p.keys.Secret)); code != 200 {
		t.Fatalf("same body again: %d %s", code, body)
	}
	code, _, body = apiCall(t, s.addr, "POST", "/api/tenants", "adm", `{"tenant":{"external_id":"Bad Ref"}}`)
	if code != 422 || !strings.Contains(body, `"external_id":["is invalid"]`) || !strings.Contains(body, `"jwt_secret":["either jwt_secret or jwt_jwks must be provided"]`) {
		t.Fatalf("invalid: %d %s", code, body)
	}
	code, _, body = apiCall(t, s.addr, "PUT", "/api/tenants/x1", "adm", `{"tenant":{"jwt_secret":"s","extensions":[{"type":"postgres_cdc_rls","settings":{"db_host":"h","db_port":"port"}}]}}`)
	if code != 422 || !strings.Contains(body, "db_port is invalid") || !strings.Contains(body, "db_name can't be blank") {
		t.Fatalf("invalid settings: %d %s", code, body)
	}
	if code, _, body := apiCall(t, s.addr, "DELETE", "/api/tenants/filed", "adm", ""); code != 422 {
		t.Fatalf("delete of a file project: %d %s", code, body)
	}
	code, _, body = apiCall(t, s.addr, "GET", "/api/tenants", "adm", "")
	if code != 200 || !strings.Contains(body, `"external_id":"api-made"`) || !strings.Contains(body, `"external_id":"filed"`) || strings.Contains(body, p.keys.Secret) {
		t.Fatalf("list: %d %s", code, body)
	}

	// It streams without a restart.
	waitProjectReady(t, s.addr, "api-made")
	cp, _, err := dialHost(t, s.addr, "api-made.localhost", p.keys.Anon)
	if err != nil {
		t.Fatal(err)
	}
	cf, _, err := dialHost(t, s.addr, "filed.localhost", other.keys.Anon)
	if err != nil {
		t.Fatal(err)
	}
	cp.join("realtime:room", p.keys.Anon, messagesAll)
	if m := cp.next("system", 10*time.Second); !strings.Contains(string(m.Payload), "Subscribed to PostgreSQL") {
		t.Fatalf("system: %s", m.Payload)
	}
	if _, err := p.db.Exec(ctx, "INSERT INTO messages (room, body) VALUES ('r', 'via-api')"); err != nil {
		t.Fatal(err)
	}
	if _, rec, _ := changeRecord(t, cp.next("postgres_changes", 10*time.Second)); rec["body"] != "via-api" {
		t.Fatalf("got %v", rec)
	}
	if code, _, body := apiCall(t, s.addr, "GET", "/api/tenants/api-made/health", "adm", ""); code != 200 || !strings.Contains(body, `"healthy":true`) || !strings.Contains(body, `"replication_connected":true`) {
		t.Fatalf("health: %d %s", code, body)
	}

	// A new secret closes this project's sockets, not the other's.
	p2, err := demo.MakeKeys(demo.NewSecret(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, body := apiCall(t, s.addr, "PATCH", "/api/tenants/api-made", "adm", `{"tenant":{"jwt_secret":"`+p2.Secret+`"}}`); code != 200 {
		t.Fatalf("patch: %d %s", code, body)
	}
	expectClosed(t, cp, "client of the project whose secret changed")
	cf.join("realtime:room", other.keys.Anon)
	waitProjectReady(t, s.addr, "api-made")
	if _, _, err := dialHost(t, s.addr, "api-made.localhost", p2.Anon); err != nil {
		t.Fatalf("new secret refused: %v", err)
	}

	// The record survives a restart of the service.
	s.kill9()
	s = launch(t, "", args...)
	waitProjectReady(t, s.addr, "api-made")
	if _, _, err := dialHost(t, s.addr, "api-made.localhost", p2.Anon); err != nil {
		t.Fatalf("after restart: %v", err)
	}

	if code, _, body := apiCall(t, s.addr, "DELETE", "/api/tenants/api-made", "adm", ""); code != 204 || body != "" {
		t.Fatalf("delete: %d %q", code, body)
	}
	if _, resp, err := dialHost(t, s.addr, "api-made.localhost", p2.Anon); err == nil || resp.StatusCode != 404 {
		t.Fatalf("deleted project still served: %v", err)
	}
	var slots int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'supabase_realtime_slot_api_made'").Scan(&slots); err != nil || slots != 0 {
		t.Fatalf("deleted project's slot: %d %v", slots, err)
	}
	if code, _, _ := apiCall(t, s.addr, "GET", "/api/tenants/api-made", "adm", ""); code != 404 {
		t.Fatalf("get deleted: %d", code)
	}
}
