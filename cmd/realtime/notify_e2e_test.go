package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/openrealtime/realtime/internal/demo"
	"github.com/openrealtime/realtime/internal/pglitetest"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// launchNotifyService runs the service as a child process with --source
// notify against dbURL (see launch).
func launchNotifyService(tb testing.TB, dbURL, secret string, extra ...string) *service {
	tb.Helper()
	return launch(tb, "", append([]string{"--jwt-secret", secret, "--db-url", dbURL, "--source", "notify"}, extra...)...)
}

// waitCaptured waits until the service's source has put its capture
// trigger on the tables. /healthz answers before the source's first
// session; rows written earlier are not captured (like rows written before
// a replication slot exists).
func waitCaptured(tb testing.TB, db *pgx.Conn, tables ...string) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		err := db.QueryRow(context.Background(), `SELECT count(*) FROM pg_trigger WHERE tgname = 'realtime_capture' AND tgrelid = ANY ($1::regclass[])`, tables).Scan(&n)
		if err == nil && n == len(tables) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("capture triggers on %v: %d installed (%v)", tables, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The whole pipeline on PGlite: the demo schema's owner-only todos under
// RLS, two users and anon. Each user receives exactly their own rows
// without the revoked column, anon gets the "Error 401" event, a DELETE
// reaches both users with old_record cut to the primary key, and the open
// messages table reaches everyone.
func TestNotifySourceEndToEnd(t *testing.T) {
	srv := pglitetest.Start(t, pglitetest.Options{MaxConnections: 8})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, err := pgx.ParseConfig(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec // no named statements on the shared session
	db, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	if _, err := db.Exec(ctx, demo.SchemaSQL); err != nil {
		t.Fatal(err)
	}
	keys, err := demo.MakeKeys(demo.NewSecret(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	run := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	s := launchNotifyService(t, srv.URL(), keys.Secret, "--poll-interval", "20ms", "--log-level", "debug")
	waitCaptured(t, db, "public.todos", "public.messages")
	alice := s.dial(t, keys.Anon)
	bob := s.dial(t, keys.Anon)
	anon := s.dial(t, keys.Anon)
	alice.join("realtime:a", keys.User, todos)
	bob.join("realtime:b", keys.User2, todos)
	anon.join("realtime:c", keys.Anon, todos)
	for _, c := range []*wsClient{alice, bob, anon} {
		if m := c.next("system", 30*time.Second); !strings.Contains(string(m.Payload), "Subscribed to PostgreSQL") {
			t.Fatalf("system: %s", m.Payload)
		}
	}
	run("INSERT INTO todos (id, user_id, title, secret) VALUES (1, $1, 'a1', 's'), (2, $2, 'b1', 's'), (3, $1, 'a2', 's')", keys.UserID, keys.User2ID)
	for _, tc := range []struct {
		c      *wsClient
		user   string
		titles []string
	}{{alice, keys.UserID, []string{"a1", "a2"}}, {bob, keys.User2ID, []string{"b1"}}} {
		for _, want := range tc.titles {
			typ, rec, errs := changeRecord(t, tc.c.next("postgres_changes", 30*time.Second))
			if typ != "INSERT" || rec["title"] != want || rec["user_id"] != tc.user || errs != nil {
				t.Fatalf("want %s for %s, got %s %v %v", want, tc.user, typ, rec, errs)
			}
			if _, leaked := rec["secret"]; leaked {
				t.Fatalf("revoked column delivered: %v", rec)
			}
			if _, ok := rec["done"].(bool); !ok {
				t.Fatalf("done is not a JSON boolean: %v", rec)
			}
		}
	}
	// anon may not SELECT any column of todos: no event at all, not even
	// "Error 401" (docs/protocol.md §4.5); checked once alice's next event
	// (a later commit) has arrived.
	defer func() {
		select {
		case m := <-anon.frames:
			if m.Event == "postgres_changes" {
				t.Errorf("anon received %s", m.Payload)
			}
		default:
		}
	}()

	run("UPDATE todos SET done = true WHERE id = 1")
	typ, rec, _ := changeRecord(t, alice.next("postgres_changes", 30*time.Second))
	if typ != "UPDATE" || rec["done"] != true || rec["title"] != "a1" {
		t.Fatalf("alice update: %s %v", typ, rec)
	}
	// DELETE is not checked against RLS (the row is gone): both users get
	// it, with old_record cut to the primary key on an RLS table.
	run("DELETE FROM todos WHERE id = 3")
	for _, c := range []*wsClient{alice, bob} {
		typ, old, _ := changeRecord(t, c.next("postgres_changes", 30*time.Second))
		if typ != "DELETE" || len(old) != 1 || old["id"] != float64(3) {
			t.Fatalf("delete: %s %v", typ, old)
		}
	}
	// Bob saw nothing of alice's update: his next event is his own marker.
	run("INSERT INTO todos (id, user_id, title) VALUES (4, $1, 'b-marker')", keys.User2ID)
	if _, rec, _ := changeRecord(t, bob.next("postgres_changes", 30*time.Second)); rec["title"] != "b-marker" {
		t.Fatalf("bob got %v before his marker", rec)
	}

	// The open table reaches every subscriber.
	m := s.dial(t, keys.Anon)
	m.join("realtime:m", keys.Anon, map[string]any{"event": "INSERT", "schema": "public", "table": "messages"})
	m.next("system", 30*time.Second)
	run("INSERT INTO messages (room, body) VALUES ('lobby', 'hello from PGlite')")
	if _, rec, _ := changeRecord(t, m.next("postgres_changes", 30*time.Second)); rec["body"] != "hello from PGlite" {
		t.Fatalf("messages: %v", rec)
	}
}

// BenchmarkNotifySourceEndToEnd measures the whole path from PGlite to a
// WebSocket subscriber: b.N rows inserted into the open messages table by
// one writer (rowsPerStmt per autocommit INSERT, as fast as possible or
// paced), each delivered as a postgres_changes frame. It reports the
// sustained rate at the client and the latency from the writer's commit
// acknowledgement to the frame's arrival. Run with a fixed count, e.g.
//
//	go test -run '^$' -bench NotifySourceEndToEnd -benchtime 5000x ./cmd/realtime/
func BenchmarkNotifySourceEndToEnd(b *testing.B) {
	for _, bc := range []struct {
		name        string
		rowsPerStmt int
		rate        float64
		poll        string
	}{
		{"bridge=stock/rows=1/rate=max/poll=100ms", 1, 0, "100ms"},
		{"bridge=stock/rows=100/rate=max/poll=100ms", 100, 0, "100ms"},
		{"bridge=stock/rows=1/rate=200/poll=100ms", 1, 200, "100ms"},
		{"bridge=stock/rows=1/rate=200/poll=20ms", 1, 200, "20ms"},
		{"bridge=relay/rows=1/rate=max/poll=100ms", 1, 0, "100ms"},
		{"bridge=relay/rows=100/rate=max/poll=100ms", 100, 0, "100ms"},
		{"bridge=relay/rows=1/rate=200/poll=100ms", 1, 200, "100ms"},
	} {
		b.Run(bc.name, func(b *testing.B) { benchEndToEnd(b, bc.rowsPerStmt, bc.rate, bc.poll) })
	}
}

func benchEndToEnd(b *testing.B, rowsPerStmt int, rate float64, poll string) {
	// bridge=stock is pglite-server (the service polls); bridge=relay is
	// cmd/pglite-bridge (it wakes on each commit).
	srv := pglitetest.Start(b, pglitetest.Options{MaxConnections: 8, Stock: strings.Contains(b.Name(), "bridge=stock/")})
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	db, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, demo.SchemaSQL); err != nil {
		b.Fatal(err)
	}
	keys, err := demo.MakeKeys(demo.NewSecret(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	addr := launchNotifyService(b, srv.URL(), keys.Secret, "--poll-interval", poll, "--log-level", "warn").addr
	waitCaptured(b, db, "public.messages")

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/realtime/v1/websocket?vsn=2.0.0&apikey="+keys.Anon, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()
	join, _ := json.Marshal(map[string]any{"access_token": keys.Anon, "config": map[string]any{
		"postgres_changes": []map[string]any{{"event": "INSERT", "schema": "public", "table": "messages"}}}})
	ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, "1", "1", "realtime:bench", "phx_join", join))

	total := b.N
	acked := make([]atomic.Int64, total+1) // unix ns of each row's commit acknowledgement
	subscribed := make(chan struct{})
	var subscribedOnce sync.Once
	type result struct {
		received []time.Time // per id, when its frame arrived
		last     time.Time
		err      error
	}
	res := make(chan result, 1)
	go func() {
		r := result{received: make([]time.Time, total+1)}
		got := 0
		for got < total {
			ws.SetReadDeadline(time.Now().Add(2 * time.Minute))
			_, data, err := ws.ReadMessage()
			if err != nil {
				r.err = fmt.Errorf("after %d of %d changes: %w", got, total, err)
				break
			}
			now := time.Now()
			m, err := phoenix.DecodeText(phoenix.V2, data)
			if err != nil {
				continue
			}
			switch m.Event {
			case "system":
				if strings.Contains(string(m.Payload), "Subscribed to PostgreSQL") {
					subscribedOnce.Do(func() { close(subscribed) })
				}
			case "postgres_changes":
				var p struct {
					Data struct {
						Record struct {
							ID int `json:"id"`
						} `json:"record"`
					} `json:"data"`
				}
				if json.Unmarshal(m.Payload, &p) == nil && p.Data.Record.ID >= 1 && p.Data.Record.ID <= total && r.received[p.Data.Record.ID].IsZero() {
					r.received[p.Data.Record.ID] = now
					got++
					r.last = now
				}
			}
		}
		res <- r
	}()
	select {
	case <-subscribed:
	case <-time.After(30 * time.Second):
		b.Fatal("not subscribed")
	}

	b.ResetTimer()
	start := time.Now()
	for id := 1; id <= total; id += rowsPerStmt {
		k := min(rowsPerStmt, total-id+1)
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(id-1) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		if _, err := db.Exec(ctx, `INSERT INTO messages (id, room, body) SELECT g, 'bench', 'hello' FROM generate_series($1::bigint, $1::bigint + $2 - 1) g`, id, k); err != nil {
			b.Fatal(err)
		}
		now := time.Now().UnixNano()
		for j := id; j < id+k; j++ {
			acked[j].Store(now)
		}
	}
	written := time.Since(start)
	r := <-res
	b.StopTimer()
	if r.err != nil {
		b.Fatal(r.err)
	}
	lat := make([]time.Duration, 0, total)
	for id := 1; id <= total; id++ {
		lat = append(lat, max(0, r.received[id].Sub(time.Unix(0, acked[id].Load()))))
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	pct := func(q float64) float64 { return ms(lat[min(len(lat)-1, int(q*float64(len(lat))))]) }
	b.ReportMetric(float64(total)/written.Seconds(), "written/s")
	b.ReportMetric(float64(total)/r.last.Sub(start).Seconds(), "received/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.95), "p95_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max_ms")
}
