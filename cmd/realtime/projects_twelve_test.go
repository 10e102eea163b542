package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/openrealtime/realtime/internal/demo"
	"github.com/openrealtime/realtime/internal/pglitetest"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// newLiteProject starts a PGlite instance with the demo schema and keys
// of its own; it returns the project (db is a session on the instance).
func newLiteProject(t *testing.T, ref string) *projectDB {
	t.Helper()
	ctx := context.Background()
	lite := pglitetest.Start(t, pglitetest.Options{MaxConnections: 8})
	cfg, err := pgx.ParseConfig(lite.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec // no named statements on the shared session
	db, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	if _, err := db.Exec(ctx, demo.SchemaSQL); err != nil {
		t.Fatal(err)
	}
	keys, err := demo.MakeKeys(demo.NewSecret(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &projectDB{ref: ref, url: lite.URL(), keys: keys, db: db}
}

// joinRoom joins topic with postgres_changes on messages, presence and
// broadcast without self-delivery.
func joinRoom(t *testing.T, c *wsClient, topic, token, presenceKey string) {
	t.Helper()
	p, _ := json.Marshal(map[string]any{"access_token": token, "config": map[string]any{
		"broadcast": map[string]any{"self": false}, "presence": map[string]any{"key": presenceKey, "enabled": true},
		"postgres_changes": []any{messagesAll}}})
	c.ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, "1", "1", topic, "phx_join", p))
	if m := c.next("phx_reply", 10*time.Second); !strings.Contains(string(m.Payload), `"status":"ok"`) {
		t.Fatalf("join %s: %s", topic, m.Payload)
	}
}

// systemMessage waits for a system frame with the given status and returns its message.
func systemMessage(t *testing.T, c *wsClient, status string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := c.next("system", time.Until(deadline))
		var p struct{ Status, Message string }
		json.Unmarshal(m.Payload, &p)
		if p.Status == status {
			return p.Message
		}
	}
}

// twelveProject is one project of the test with its two clients.
type twelveProject struct {
	*projectDB
	a, b *wsClient
}

// send pushes a broadcast tagged with the project's ref from a.
func (p *twelveProject) send(tag string) {
	payload := fmt.Sprintf(`{"type":"broadcast","event":"e","payload":{"p":%q,"tag":%q}}`, p.ref, tag)
	p.a.ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, "1", "9", "realtime:room", "broadcast", []byte(payload)))
}

// insert commits a row whose body carries the project's ref.
func (p *twelveProject) insert(t *testing.T, tag string) {
	t.Helper()
	if _, err := p.db.Exec(context.Background(), "INSERT INTO messages (room, body) VALUES ('r', $1)", p.ref+"/"+tag); err != nil {
		t.Fatalf("%s: insert: %v", p.ref, err)
	}
}

// collect reads b's frames until every tag in want arrived (broadcast
// tags, row bodies "<ref>/<tag>", presence joins); any frame naming
// another project fails the test.
func (p *twelveProject) collect(t *testing.T, want map[string]bool, all []*twelveProject) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for len(want) > 0 {
		var m phoenix.Message
		select {
		case m = <-p.b.frames:
		case <-deadline:
			t.Fatalf("%s: still waiting for %v", p.ref, want)
		}
		var got string
		switch m.Event {
		case "broadcast":
			var b struct{ Payload struct{ P, Tag string } }
			json.Unmarshal(m.Payload, &b)
			if b.Payload.P != p.ref {
				t.Fatalf("%s: cross-project broadcast %s", p.ref, m.Payload)
			}
			got = b.Payload.Tag
		case "postgres_changes":
			_, rec, _ := changeRecord(t, m)
			body, _ := rec["body"].(string)
			ref, tag, _ := strings.Cut(body, "/")
			if ref != p.ref {
				t.Fatalf("%s: cross-project change %s", p.ref, m.Payload)
			}
			got = tag
		case "presence_state", "presence_diff":
			for _, o := range all {
				if o != p && strings.Contains(string(m.Payload), fmt.Sprintf(`"p":%q`, o.ref)) {
					t.Fatalf("%s: cross-project presence %s", p.ref, m.Payload)
				}
			}
			if strings.Contains(string(m.Payload), fmt.Sprintf(`"p":%q`, p.ref)) {
				got = "presence"
			}
		case "":
			t.Fatalf("%s: connection closed", p.ref)
		}
		delete(want, got)
	}
}

// Twelve projects in one process (10 databases of one PostgreSQL cluster
// and 2 PGlite instances), two clients each on the same channel name:
// randomized broadcasts, presence and row changes reach only their own
// project's clients; every project's token is refused by the 11 others.
// One project's database then refuses connections and loses its
// walsender: its clients get the system error while the other 11 keep
// flowing; when it accepts connections again its clients get every row
// committed meanwhile.
func TestProjectsTwelveIsolatedWithOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, admin := startClusterAdmin(t, ctx)

	var ps []*twelveProject
	var file strings.Builder
	file.WriteString("projects:\n")
	for i := range 12 {
		var db *projectDB
		if i < 10 {
			db = newProjectDB(t, c, admin, fmt.Sprintf("pg%02d", i))
			file.WriteString(db.entry("SECRET_"+strings.ToUpper(db.ref), ""))
		} else {
			db = newLiteProject(t, fmt.Sprintf("lite%d", i-9))
			file.WriteString(fmt.Sprintf("  - ref: %s\n    db_url: %q\n    source: notify\n    jwt_secret: ${SECRET_%s}\n", db.ref, db.url, strings.ToUpper(db.ref)))
		}
		t.Setenv("SECRET_"+strings.ToUpper(db.ref), db.keys.Secret)
		ps = append(ps, &twelveProject{projectDB: db})
	}
	path := filepath.Join(t.TempDir(), "projects.yaml")
	if err := os.WriteFile(path, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	s := launchProjectsOnly(t, path, "--poll-interval", "20ms")
	for _, p := range ps {
		waitProjectReady(t, s.addr, p.ref)
		if p.ref[:2] != "pg" {
			waitCaptured(t, p.db, "public.messages")
		}
	}

	// A token of one project is refused on every other.
	for i, p := range ps {
		for j, o := range ps {
			if i == j {
				continue
			}
			if _, resp, err := dialHost(t, s.addr, o.ref+".localhost", p.keys.Anon); err == nil || resp == nil || resp.StatusCode != 401 {
				t.Fatalf("%s's token on %s: %v %v", p.ref, o.ref, resp, err)
			}
		}
	}
	for _, p := range ps {
		for _, cl := range []**wsClient{&p.a, &p.b} {
			var err error
			if *cl, _, err = dialHost(t, s.addr, p.ref+".localhost", p.keys.Anon); err != nil {
				t.Fatalf("%s: %v", p.ref, err)
			}
		}
		joinRoom(t, p.a, "realtime:room", p.keys.Anon, "a")
		joinRoom(t, p.b, "realtime:room", p.keys.Anon, "b")
	}
	for _, p := range ps {
		for _, cl := range []*wsClient{p.a, p.b} {
			if msg := systemMessage(t, cl, "ok", 30*time.Second); !strings.Contains(msg, "Subscribed to PostgreSQL") {
				t.Fatalf("%s: %s", p.ref, msg)
			}
		}
	}

	// Randomized traffic, interleaved across projects.
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	want := make([]map[string]bool, len(ps))
	type op struct{ p, kind, n int }
	var ops []op
	for i, p := range ps {
		want[i] = map[string]bool{"presence": true}
		track := fmt.Sprintf(`{"type":"presence","event":"track","payload":{"p":%q}}`, p.ref)
		p.a.ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, "1", "8", "realtime:room", "presence", []byte(track)))
		for k := range 1 + rng.IntN(4) {
			ops = append(ops, op{i, 0, k})
		}
		for k := range 1 + rng.IntN(3) {
			ops = append(ops, op{i, 1, k})
		}
	}
	rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	for _, o := range ops {
		p := ps[o.p]
		tag := fmt.Sprintf("%d-%d", o.kind, o.n)
		want[o.p][tag] = true
		if o.kind == 0 {
			p.send(tag)
		} else {
			p.insert(t, tag)
		}
	}
	for i, p := range ps {
		p.collect(t, want[i], ps)
	}

	// Outage of pg05: its database refuses connections and the service's
	// sessions on it end; the test's own session stays and commits.
	down := ps[5]
	var keep int
	if err := down.db.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&keep); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+down.ref+" WITH ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2", down.ref, keep); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*wsClient{down.a, down.b} {
		if msg := systemMessage(t, cl, "error", 30*time.Second); msg != "Realtime was unable to connect to the project database" {
			t.Fatalf("outage: %q", msg)
		}
	}
	lost := map[string]bool{}
	for k := range 3 {
		tag := fmt.Sprintf("down-%d", k)
		down.insert(t, tag)
		lost[tag] = true
	}
	for _, p := range ps {
		if p == down {
			continue
		}
		p.send("during-b")
		p.insert(t, "during-i")
		p.collect(t, map[string]bool{"during-b": true, "during-i": true}, ps)
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+down.ref+" WITH ALLOW_CONNECTIONS true"); err != nil {
		t.Fatal(err)
	}
	if msg := systemMessage(t, down.b, "ok", 60*time.Second); !strings.Contains(msg, "Subscribed to PostgreSQL") {
		t.Fatalf("after the outage: %s", msg)
	}
	down.collect(t, lost, ps)
}
