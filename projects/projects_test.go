package projects

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		host, header, ref string
		named             bool
	}{
		{"alpha.localhost:4000", "", "alpha", true},
		{"Alpha.Example.com", "", "alpha", true},
		{"realtime-dev.supabase-realtime:4000", "", "realtime-dev", true},
		{"localhost:4000", "", "", false},
		{"127.0.0.1:4000", "", "", false},
		{"[::1]:4000", "", "", false},
		{"localhost:4000", "beta", "beta", true},
		{"alpha.localhost", "beta", "beta", true},
	} {
		r := httptest.NewRequest("GET", "/realtime/v1/websocket", nil)
		r.Host = tc.host
		if tc.header != "" {
			r.Header.Set(HeaderRef, tc.header)
		}
		ref, named := Resolve(r)
		if ref != tc.ref || named != tc.named {
			t.Errorf("%s %q: got %q %v, want %q %v", tc.host, tc.header, ref, named, tc.ref, tc.named)
		}
	}
}

func TestParseDefaultsAndSubstitution(t *testing.T) {
	env := map[string]string{"S": `se"cret`, "PW": "p@ss"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	ps, err := Parse([]byte(`
projects:
  - ref: my-app
    db_url: postgres://u:${PW}@h/db
    jwt_secret: ${S}
    max_concurrent_users: 7
    private_only: true
  - ref: b
    source: notify
    jwt_jwks: '{"keys":[]}'
`), lookup)
	if err != nil {
		t.Fatal(err)
	}
	p := ps[0]
	if p.JWTSecret != `se"cret` || p.DBURL != "postgres://u:p@ss@h/db" || !p.PrivateOnly {
		t.Fatalf("substitution: %+v", p)
	}
	if p.Slot != "supabase_realtime_slot_my_app" || p.Publication != "supabase_realtime" || p.Source != "logical" {
		t.Fatalf("defaults: %+v", p)
	}
	if p.MaxConcurrentUsers != 7 || p.MaxJoinsPerSecond != 100 || p.MaxPayloadBytes() != 3_000_000 || p.ClientPresenceWindowMS != 30000 {
		t.Fatalf("limits: %+v", p.Limits)
	}
	if ps[1].Source != "notify" || ps[1].JWTJWKS == "" {
		t.Fatalf("second: %+v", ps[1])
	}
}

func TestParseErrors(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	for _, tc := range []struct{ doc, want string }{
		{"projects:\n  - ref: a\n    jwt_secret: ${MISSING}\n", "MISSING is not set"},
		{"projects:\n  - ref: Bad_Ref\n    jwt_secret: x\n", "ref is invalid"},
		{"projects:\n  - ref: a\n", "either jwt_secret or jwt_jwks must be provided"},
		{"projects:\n  - ref: a\n    jwt_secret: x\n    source: wal\n", "source must be logical or notify"},
		{"projects:\n  - ref: a\n    jwt_secret: x\n  - ref: a\n    jwt_secret: y\n", "appears twice"},
		{"projects:\n  - ref: a\n    jwt_secret: x\n    max_joins: 3\n", "field max_joins not found"},
		{"projects:\n  - ref: a\n    jwt_secret: x\n    max_concurrent_users: -1\n", "max_concurrent_users must be greater than 0"},
	} {
		_, err := Parse([]byte(tc.doc), none)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.doc, err, tc.want)
		}
	}
	if ps, err := Parse(nil, none); err != nil || len(ps) != 0 {
		t.Fatalf("empty file: %v %v", ps, err)
	}
}

func TestRefuseShapes(t *testing.T) {
	for _, tc := range []struct {
		path, msg string
		status    int
		want      string
		wantCode  int
	}{
		{"/realtime/v1/websocket", msgTenantNotFound, 404, `{"error":"Tenant not found"}`, 404},
		{"/api/broadcast", msgTenantNotFound, 404, `{"message":"Tenant not found in database"}`, 401},
		{"/sse", msgTenantNotFound, 404, `{"error":"Tenant not found"}`, 404},
		{"/api/broadcast", msgSuspended, 403, `{"message":"Realtime was disabled for this tenant"}`, 403},
	} {
		w := httptest.NewRecorder()
		refuse(w, httptest.NewRequest("GET", tc.path, nil), tc.status, tc.msg)
		if w.Code != tc.wantCode || strings.TrimSpace(w.Body.String()) != tc.want {
			t.Errorf("%s: %d %s", tc.path, w.Code, w.Body.String())
		}
	}
}
