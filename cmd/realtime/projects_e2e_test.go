package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/openrealtime/realtime/internal/demo"
	"github.com/openrealtime/realtime/internal/pgcluster"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// messagesAll subscribes to every change of the demo's open table.
var messagesAll = map[string]any{"event": "*", "schema": "public", "table": "messages"}

// projectDB is one project's database and keys.
type projectDB struct {
	ref  string
	url  string
	keys demo.Keys
	db   *pgx.Conn
}

// newProjectDB creates database ref in c with the demo schema and keys
// signed by a secret of its own.
func newProjectDB(t *testing.T, c *pgcluster.Cluster, admin *pgx.Conn, ref string) *projectDB {
	t.Helper()
	ctx := context.Background()
	name := strings.ReplaceAll(ref, "-", "_")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	conn, err := pgxConnect(c.URL(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, demo.SchemaSQL); err != nil {
		t.Fatal(err)
	}
	keys, err := demo.MakeKeys(demo.NewSecret(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &projectDB{ref: ref, url: c.URL(name), keys: keys, db: conn}
}

// entry is the project's record in a projects file; extra is appended.
func (p *projectDB) entry(secretVar, extra string) string {
	return fmt.Sprintf("  - ref: %s\n    db_url: %q\n    jwt_secret: ${%s}\n%s", p.ref, p.url, secretVar, extra)
}

// dialHost opens a WebSocket to the service with the given Host header.
func dialHost(t *testing.T, addr, host, apikey string) (*wsClient, *http.Response, error) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/realtime/v1/websocket?vsn=2.0.0&apikey="+apikey, http.Header{"Host": {host}})
	if err != nil {
		return nil, resp, err
	}
	c := &wsClient{t: t, ws: ws, frames: make(chan phoenix.Message, 1000)}
	go func() {
		defer close(c.frames)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if m, err := phoenix.DecodeText(phoenix.V2, data); err == nil {
				c.frames <- m
			}
		}
	}()
	t.Cleanup(func() { ws.Close() })
	return c, resp, nil
}

// waitProjectReady polls the project's /healthz (by X-Project-Ref) until
// it answers 200, i.e. its change source streams.
func waitProjectReady(t *testing.T, addr, ref string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
		req.Header.Set("X-Project-Ref", ref)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("project %s not ready", ref)
}

// expectClosed waits until c's connection ends.
func expectClosed(t *testing.T, c *wsClient, what string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("%s: connection still open", what)
		}
	}
}

// Two projects on two databases of one cluster, with their own secrets,
// beside the flag-configured project: tokens, changes and channel names
// stay in their project; unknown refs are refused with Supabase's shapes;
// a SIGHUP reload adds a project that streams, restarts a changed one and
// removes a deleted one (its clients closed, its slot dropped).
func TestProjectsIsolationAndReload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, admin := startClusterAdmin(t, ctx)
	a := newProjectDB(t, c, admin, "alpha")
	b := newProjectDB(t, c, admin, "beta-2")
	g := newProjectDB(t, c, admin, "gamma")

	file := filepath.Join(t.TempDir(), "projects.yaml")
	write := func(body string) {
		if err := os.WriteFile(file, []byte("projects:\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(a.entry("SECRET_A", "") + b.entry("SECRET_B", ""))
	t.Setenv("SECRET_A", a.keys.Secret)
	t.Setenv("SECRET_B", b.keys.Secret)
	t.Setenv("SECRET_G", g.keys.Secret)
	// beta-2's next secret, used after the reload: the service has its
	// environment from the start.
	b2, err := demo.MakeKeys(demo.NewSecret(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SECRET_B2", b2.Secret)
	defKeys, err := demo.MakeKeys(demo.NewSecret(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s := launch(t, "", "--jwt-secret", defKeys.Secret, "--projects", file, "--log-level", "debug")
	port := s.addr[strings.LastIndex(s.addr, ":")+1:]
	waitProjectReady(t, s.addr, "alpha")
	waitProjectReady(t, s.addr, "beta-2")

	// Host's first label picks the project; a token of another project is
	// refused at the upgrade.
	ca, _, err := dialHost(t, s.addr, "alpha.localhost:"+port, a.keys.Anon)
	if err != nil {
		t.Fatal(err)
	}
	cb, _, err := dialHost(t, s.addr, "beta-2.localhost:"+port, b.keys.Anon)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ host, key string }{
		{"beta-2.localhost", a.keys.Anon}, {"alpha.localhost", b.keys.Anon}, {"alpha.localhost", defKeys.Anon}, {"localhost", a.keys.Anon},
	} {
		_, resp, err := dialHost(t, s.addr, tc.host+":"+port, tc.key)
		if err == nil || resp == nil || resp.StatusCode != 401 {
			t.Fatalf("foreign token on %s: err %v resp %v", tc.host, err, resp)
		}
	}
	if _, _, err := dialHost(t, s.addr, "localhost:"+port, defKeys.Anon); err != nil {
		t.Fatalf("default project: %v", err)
	}

	// The same channel name in both projects; a change in A reaches A only.
	ca.join("realtime:room", a.keys.Anon, messagesAll)
	cb.join("realtime:room", b.keys.Anon, messagesAll)
	for _, cl := range []*wsClient{ca, cb} {
		if m := cl.next("system", 10*time.Second); !strings.Contains(string(m.Payload), "Subscribed to PostgreSQL") {
			t.Fatalf("system: %s", m.Payload)
		}
	}
	exec := func(p *projectDB, sql string) {
		t.Helper()
		if _, err := p.db.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(a, "INSERT INTO messages (room, body) VALUES ('r', 'from-a')")
	exec(b, "INSERT INTO messages (room, body) VALUES ('r', 'from-b')")
	if _, rec, _ := changeRecord(t, ca.next("postgres_changes", 10*time.Second)); rec["body"] != "from-a" {
		t.Fatalf("A got %v", rec)
	}
	if _, rec, _ := changeRecord(t, cb.next("postgres_changes", 10*time.Second)); rec["body"] != "from-b" {
		t.Fatalf("B got %v first", rec)
	}
	// A broadcast in A's room does not reach B's room of the same name.
	ca.ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, "1", "2", "realtime:room", "broadcast",
		[]byte(`{"type":"broadcast","event":"e","payload":{"x":1}}`)))
	exec(b, "INSERT INTO messages (room, body) VALUES ('r', 'marker-b')")
	if m := nextData(t, cb); m.Event != "postgres_changes" || !strings.Contains(string(m.Payload), "marker-b") {
		t.Fatalf("B got %s %s before its marker", m.Event, m.Payload)
	}

	// Unknown project: WebSocket 404, REST 401, SSE 404 (Supabase's texts).
	_, resp, err := dialHost(t, s.addr, "nope.localhost:"+port, a.keys.Anon)
	if err == nil || resp == nil || resp.StatusCode != 404 {
		t.Fatalf("unknown ref upgrade: %v %v", err, resp)
	}
	if body, _ := io.ReadAll(resp.Body); !strings.Contains(string(body), `"error":"Tenant not found"`) {
		t.Fatalf("unknown ref body %s", body)
	}
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"POST", "/api/broadcast", 401, `{"message":"Tenant not found in database"}`},
		{"POST", "/realtime/v1/api/broadcast", 401, `{"message":"Tenant not found in database"}`},
		{"GET", "/realtime/v1/sse", 404, `{"error":"Tenant not found"}`},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+s.addr+tc.path, strings.NewReader(`{"messages":[]}`))
		req.Header.Set("X-Project-Ref", "nope")
		req.Header.Set("apikey", a.keys.Anon)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || strings.TrimSpace(string(body)) != tc.body {
			t.Fatalf("%s %s: %d %s", tc.method, tc.path, resp.StatusCode, body)
		}
	}

	// Reload: alpha removed, beta-2 gets a new secret and private_only,
	// gamma added.
	write(b.entry("SECRET_B2", "    private_only: true\n") + g.entry("SECRET_G", ""))
	s.cmd.Process.Signal(syscall.SIGHUP)
	expectClosed(t, ca, "removed project's client")
	expectClosed(t, cb, "changed project's client")
	waitProjectReady(t, s.addr, "gamma")
	waitProjectReady(t, s.addr, "beta-2")
	if _, resp, err := dialHost(t, s.addr, "alpha.localhost:"+port, a.keys.Anon); err == nil || resp.StatusCode != 404 {
		t.Fatalf("removed project still served: %v", err)
	}
	var slots int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'supabase_realtime_slot_alpha'").Scan(&slots); err != nil || slots != 0 {
		t.Fatalf("removed project's slot: %d %v", slots, err)
	}
	// beta-2 now takes its new secret only, and private channels only.
	if _, resp, err := dialHost(t, s.addr, "beta-2.localhost:"+port, b.keys.Anon); err == nil || resp.StatusCode != 401 {
		t.Fatalf("old secret of beta-2 accepted: %v", err)
	}
	cb2, _, err := dialHost(t, s.addr, "beta-2.localhost:"+port, b2.Anon)
	if err != nil {
		t.Fatal(err)
	}
	cb2.ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, "1", "1", "realtime:room", "phx_join", []byte(`{"config":{}}`)))
	if m := cb2.next("phx_reply", 10*time.Second); !strings.Contains(string(m.Payload), "PrivateOnly: This project only allows private channels") {
		t.Fatalf("public join on private_only project: %s", m.Payload)
	}
	cg, _, err := dialHost(t, s.addr, "gamma.localhost:"+port, g.keys.Anon)
	if err != nil {
		t.Fatal(err)
	}
	cg.join("realtime:room", g.keys.Anon, messagesAll)
	cg.next("system", 10*time.Second)
	exec(g, "INSERT INTO messages (room, body) VALUES ('r', 'from-g')")
	if _, rec, _ := changeRecord(t, cg.next("postgres_changes", 10*time.Second)); rec["body"] != "from-g" {
		t.Fatalf("gamma got %v", rec)
	}

	// Suspend gamma: its client is closed and new ones get 403.
	write(b.entry("SECRET_B2", "    private_only: true\n") + g.entry("SECRET_G", "    suspend: true\n"))
	s.cmd.Process.Signal(syscall.SIGHUP)
	expectClosed(t, cg, "suspended project's client")
	// The socket closes while the project is being stopped (503); then
	// the suspended record is in force.
	for deadline := time.Now().Add(20 * time.Second); ; {
		_, resp, err = dialHost(t, s.addr, "gamma.localhost:"+port, g.keys.Anon)
		if err == nil || resp == nil || resp.StatusCode != 503 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err == nil || resp.StatusCode != 403 {
		t.Fatalf("suspended project: %v %v", err, resp)
	}
	if body, _ := io.ReadAll(resp.Body); !strings.Contains(string(body), "Realtime was disabled for this tenant") {
		t.Fatalf("suspended body %s", body)
	}
	// beta-2 was unchanged by this reload: its client stays.
	cb2.ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, "", "9", "phoenix", "heartbeat", []byte(`{}`)))
	cb2.next("phx_reply", 10*time.Second)
}

// nextData returns the next broadcast or postgres_changes frame.
func nextData(t *testing.T, c *wsClient) phoenix.Message {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-c.frames:
			if !ok {
				t.Fatal("connection closed")
			}
			if m.Event == "broadcast" || m.Event == "postgres_changes" {
				return m
			}
		case <-deadline:
			t.Fatal("no data frame")
		}
	}
}

// A PGlite project (source notify) beside a PostgreSQL project, without
// a flag-configured project: each one's changes reach only its own
// subscribers, and a request naming no project is refused.
func TestProjectsPGliteBesidePostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, admin := startClusterAdmin(t, ctx)
	pg := newProjectDB(t, c, admin, "pgproj")

	lite := newLiteProject(t, "lite")
	liteDB, liteKeys := lite.db, lite.keys

	file := filepath.Join(t.TempDir(), "projects.yaml")
	body := "projects:\n" + pg.entry("SECRET_PG", "") +
		fmt.Sprintf("  - ref: lite\n    db_url: %q\n    source: notify\n    jwt_secret: ${SECRET_LITE}\n", lite.url)
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SECRET_PG", pg.keys.Secret)
	t.Setenv("SECRET_LITE", liteKeys.Secret)
	s := launchProjectsOnly(t, file, "--poll-interval", "20ms")
	waitProjectReady(t, s.addr, "pgproj")
	waitProjectReady(t, s.addr, "lite")
	waitCaptured(t, liteDB, "public.messages")
	if resp, err := http.Get("http://" + s.addr + "/healthz"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("no default project: %v %v", err, resp)
	}

	cp, _, err := dialHost(t, s.addr, "pgproj.example.com", pg.keys.Anon)
	if err != nil {
		t.Fatal(err)
	}
	cl, _, err := dialHost(t, s.addr, "lite.example.com", liteKeys.Anon)
	if err != nil {
		t.Fatal(err)
	}
	cp.join("realtime:room", pg.keys.Anon, messagesAll)
	cl.join("realtime:room", liteKeys.Anon, messagesAll)
	cp.next("system", 30*time.Second)
	cl.next("system", 30*time.Second)
	if _, err := liteDB.Exec(ctx, "INSERT INTO messages (room, body) VALUES ('r', 'from-lite')"); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.db.Exec(ctx, "INSERT INTO messages (room, body) VALUES ('r', 'from-pg')"); err != nil {
		t.Fatal(err)
	}
	if _, rec, _ := changeRecord(t, cl.next("postgres_changes", 30*time.Second)); rec["body"] != "from-lite" {
		t.Fatalf("lite got %v", rec)
	}
	if _, rec, _ := changeRecord(t, cp.next("postgres_changes", 30*time.Second)); rec["body"] != "from-pg" {
		t.Fatalf("pg got %v", rec)
	}
}

// launchProjectsOnly runs the service with a projects file and no
// flag-configured project; it waits for the listener, not /healthz (which
// names no project).
func launchProjectsOnly(t *testing.T, file string, extra ...string) *service {
	t.Helper()
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	argv, _ := json.Marshal(append([]string{"serve", "--addr", addr, "--projects", file, "--log-level", "debug"}, extra...))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "REALTIME_TEST_EXEC="+string(argv))
	s := &service{cmd: cmd, addr: addr}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.logs.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		if t.Failed() {
			t.Logf("service log:\n%s", s.output())
		}
	})
	return s
}
