package projects

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// fakeStack is an in-process stack that answers with its project and
// generation, and records being closed.
type fakeStack struct {
	name    string
	mu      sync.Mutex // guards closed, removed
	closed  bool
	removed bool
}

func (s *fakeStack) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, s.name) })
}

func (s *fakeStack) Close(_ context.Context, removed bool) {
	s.mu.Lock()
	s.closed, s.removed = true, removed
	s.mu.Unlock()
}

func TestRegistryApply(t *testing.T) {
	started := map[string]*fakeStack{}
	gen := 0
	fail := ""
	reg := New(Config{
		DefaultRef: "realtime-dev",
		Default:    http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "default") }),
		Start: func(_ context.Context, p Project) (Stack, error) {
			if p.Ref == fail {
				return nil, errors.New("boom")
			}
			gen++
			s := &fakeStack{name: fmt.Sprintf("%s#%d", p.Ref, gen)}
			started[s.name] = s
			return s, nil
		},
	})
	get := func(host string) (int, string) {
		r := httptest.NewRequest("GET", "/healthz", nil)
		r.Host = host
		w := httptest.NewRecorder()
		reg.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	proj := func(ref, secret string, suspend bool) Project {
		p := Project{Ref: ref, JWTSecret: secret, Suspend: suspend}
		p.Normalize()
		return p
	}
	ctx := context.Background()
	if err := reg.Apply(ctx, []Project{proj("a", "1", false), proj("b", "1", false)}); err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{"a.localhost": "a#1", "b.x.org": "b#2", "localhost": "default", "realtime-dev.svc": "default"} {
		if code, body := get(host); code != 200 || body != want {
			t.Fatalf("%s: %d %s, want %s", host, code, body, want)
		}
	}
	if code, _ := get("c.localhost"); code != 404 {
		t.Fatalf("unknown: %d", code)
	}
	// b unchanged, a changed, c added, then a suspended and b removed.
	fail = "c"
	if err := reg.Apply(ctx, []Project{proj("a", "2", false), proj("b", "1", false), proj("c", "1", false)}); err == nil {
		t.Fatal("c's start failure not reported")
	}
	if !started["a#1"].closed || started["a#1"].removed || started["b#2"].closed {
		t.Fatalf("a#1 closed %v, b#2 closed %v", started["a#1"].closed, started["b#2"].closed)
	}
	if code, body := get("a.localhost"); body != "a#3" {
		t.Fatalf("a after change: %d %s", code, body)
	}
	if code, _ := get("c.localhost"); code != 503 {
		t.Fatalf("failed project: %d", code)
	}
	fail = ""
	if err := reg.Apply(ctx, []Project{proj("a", "2", true), proj("c", "1", false)}); err != nil {
		t.Fatal(err)
	}
	if !started["b#2"].removed || !started["a#3"].closed {
		t.Fatal("b not removed or a not stopped on suspend")
	}
	if code, body := get("a.localhost"); code != 403 || body != "{\"error\":\"Realtime was disabled for this tenant\"}\n" {
		t.Fatalf("suspended: %d %s", code, body)
	}
	if code, body := get("c.localhost"); code != 200 || body != "c#4" {
		t.Fatalf("c retried: %d %s", code, body)
	}
	if code, _ := get("b.localhost"); code != 404 {
		t.Fatalf("removed: %d", code)
	}
	if err := reg.Apply(ctx, []Project{proj("realtime-dev", "1", false)}); err == nil {
		t.Fatal("default ref accepted")
	}
	reg.Close(ctx)
	if !started["c#4"].closed {
		t.Fatal("Close left c running")
	}
}

func TestStorePersistsAtomically(t *testing.T) {
	path := t.TempDir() + "/state.json"
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	p := Project{Ref: "a", JWTSecret: "s", DBURL: "postgres://x"}
	p.Normalize()
	if err := s.Put(Record{Project: p, Settings: map[string]any{"db_host": "h"}}); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := s2.Get("a")
	if !ok || r.Project != p || r.Settings["db_host"] != "h" {
		t.Fatalf("reopened: %+v %v", r, ok)
	}
	if ok, err := s2.Delete("a"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	s3, _ := OpenStore(path)
	if len(s3.All()) != 0 {
		t.Fatal("delete not persisted")
	}
}
