package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

var todos = map[string]any{"event": "*", "schema": "public", "table": "todos"}

// Two users and anon on the owner-only table: each user gets exactly their
// rows without the revoked column; anon, who may not read the key, gets the
// "Error 401" event and never a row.
func TestRLSIsolationAndColumnPrivileges(t *testing.T) {
	e := newEnv(t)
	s := e.startService(t, "")
	alice := s.dial(t, e.keys.Anon)
	bob := s.dial(t, e.keys.Anon)
	anon := s.dial(t, e.keys.Anon)
	alice.join("realtime:a", e.keys.User, todos)
	bob.join("realtime:b", e.keys.User2, todos)
	anon.join("realtime:c", e.keys.Anon, todos)
	for _, c := range []*wsClient{alice, bob, anon} {
		if m := c.next("system", 10*time.Second); !strings.Contains(string(m.Payload), "Subscribed to PostgreSQL") {
			t.Fatalf("system: %s", m.Payload)
		}
	}
	e.exec(t, "INSERT INTO todos (user_id, title, secret) VALUES ($1, 'a1', 's'), ($2, 'b1', 's'), ($1, 'a2', 's')", e.keys.UserID, e.keys.User2ID)

	for _, tc := range []struct {
		c      *wsClient
		user   string
		titles []string
	}{{alice, e.keys.UserID, []string{"a1", "a2"}}, {bob, e.keys.User2ID, []string{"b1"}}} {
		for _, want := range tc.titles {
			typ, rec, errs := changeRecord(t, tc.c.next("postgres_changes", 10*time.Second))
			if typ != "INSERT" || rec["title"] != want || rec["user_id"] != tc.user || errs != nil {
				t.Fatalf("want %s for %s, got %s %v %v", want, tc.user, typ, rec, errs)
			}
			if _, leaked := rec["secret"]; leaked {
				t.Fatalf("revoked column delivered: %v", rec)
			}
		}
	}
	for i := 0; i < 3; i++ {
		_, rec, errs := changeRecord(t, anon.next("postgres_changes", 10*time.Second))
		if len(errs) != 1 || errs[0] != "Error 401: Unauthorized" || len(rec) != 0 {
			t.Fatalf("anon got %v %v", rec, errs)
		}
	}
	// No extra row reached alice: a marker row of hers is her next event.
	e.exec(t, "INSERT INTO todos (user_id, title) VALUES ($1, 'marker')", e.keys.UserID)
	if _, rec, _ := changeRecord(t, alice.next("postgres_changes", 10*time.Second)); rec["title"] != "marker" {
		t.Fatalf("alice got %v before her marker", rec)
	}
}

// A policy that raises for one user's claims denies that group only; the
// other group keeps receiving in the same batch and after it.
func TestFailingPolicyDoesNotBlockOthers(t *testing.T) {
	e := newEnv(t)
	e.exec(t, `CREATE TABLE notes (id bigint PRIMARY KEY, owner uuid NOT NULL, body text)`)
	e.exec(t, `CREATE FUNCTION check_owner(o uuid) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
	BEGIN
	  IF auth.uid() = '`+e.keys.User2ID+`' THEN RAISE EXCEPTION 'policy failure for bob'; END IF;
	  RETURN o = auth.uid();
	END $$`)
	e.exec(t, `ALTER TABLE notes ENABLE ROW LEVEL SECURITY`)
	e.exec(t, `CREATE POLICY notes_read ON notes FOR SELECT USING (check_owner(owner))`)
	e.exec(t, `GRANT SELECT ON notes TO authenticated`)
	e.exec(t, `ALTER PUBLICATION supabase_realtime ADD TABLE notes`)
	s := e.startService(t, "")
	alice := s.dial(t, e.keys.Anon)
	bob := s.dial(t, e.keys.Anon)
	notes := map[string]any{"event": "INSERT", "schema": "public", "table": "notes"}
	alice.join("realtime:n", e.keys.User, notes)
	bob.join("realtime:n", e.keys.User2, notes)
	alice.next("system", 10*time.Second)
	bob.next("system", 10*time.Second)
	e.exec(t, "INSERT INTO notes VALUES (1, $1, 'one'), (2, $2, 'two'), (3, $1, 'three')", e.keys.UserID, e.keys.User2ID)
	e.exec(t, "INSERT INTO notes VALUES (4, $1, 'four')", e.keys.UserID)
	for _, want := range []string{"one", "three", "four"} {
		if _, rec, _ := changeRecord(t, alice.next("postgres_changes", 10*time.Second)); rec["body"] != want {
			t.Fatalf("alice: want %s got %v", want, rec)
		}
	}
	// Bob's connection is healthy: a heartbeat is answered, no change came.
	bob.ws.WriteMessage(1, []byte(`[null,"77","phoenix","heartbeat",{}]`))
	for {
		m := bob.next("phx_reply", 5*time.Second)
		if m.Ref == "77" {
			break
		}
	}
	select {
	case m := <-bob.frames:
		if m.Event == "postgres_changes" {
			t.Fatalf("bob received %s", m.Payload)
		}
	default:
	}
}

// sseReader reads SSE events from a response: (id, event, data).
type sseEvent struct{ id, event, data string }

func readSSE(resp *http.Response, out chan<- sseEvent) {
	defer close(out)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.event != "" {
				out <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data += line[6:]
		}
	}
}

func openSSE(t *testing.T, addr, query, lastID string) (chan sseEvent, func()) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/realtime/v1/sse?"+query, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		cancel()
		t.Fatalf("SSE status %d", resp.StatusCode)
	}
	ch := make(chan sseEvent, 10000)
	go readSSE(resp, ch)
	return ch, cancel
}

// kill -9 of the service mid-stream loses no committed change: rows written
// before, during and after the crash all arrive exactly once on a resumed
// SSE stream, and the slot's confirmed position advances.
func TestCrashResumeLosesNothing(t *testing.T) {
	e := newEnv(t)
	s := e.startService(t, "")
	q := "apikey=" + e.keys.Service + "&schema=public&table=messages&event=INSERT"
	events, stop := openSSE(t, s.addr, q, "")
	defer stop()
	if ev := <-events; ev.event != "system" || !strings.Contains(ev.data, "Subscribed to PostgreSQL") {
		t.Fatalf("first event %+v", ev)
	}
	const total = 300
	seen := map[float64]int{}
	lastID := ""
	take := func(ev sseEvent) {
		if ev.event != "postgres_changes" {
			if ev.event == "system" && strings.Contains(ev.data, `"status":"error"`) {
				t.Fatalf("unexpected system error: %s", ev.data)
			}
			return
		}
		var d struct{ Record map[string]any }
		json.Unmarshal([]byte(ev.data), &d)
		seen[d.Record["id"].(float64)]++
		lastID = ev.id
	}
	insert := func(from, to int) {
		for i := from; i < to; i++ {
			e.exec(t, "INSERT INTO messages (id, room, body) VALUES ($1, 'crash', 'x')", i)
		}
	}
	insert(1, 101)
	for len(seen) < 60 {
		select {
		case ev := <-events:
			take(ev)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d rows before the crash", len(seen))
		}
	}
	s.kill9()
	stop()
	for ev := range events { // what was already on the wire
		take(ev)
	}
	var before string
	e.db.QueryRow(context.Background(), "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'supabase_realtime_slot'").Scan(&before)
	insert(101, total+1) // written while the service is down

	s2 := e.startService(t, s.addr)
	_ = s2
	events2, stop2 := openSSE(t, s.addr, q, lastID)
	defer stop2()
	deadline := time.After(30 * time.Second)
	for len(seen) < total {
		select {
		case ev, ok := <-events2:
			if !ok {
				t.Fatal("resumed stream ended")
			}
			take(ev)
		case <-deadline:
			t.Fatalf("after restart: %d of %d rows", len(seen), total)
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("row %v delivered %d times", id, n)
		}
	}
	var after string
	for i := 0; i < 100; i++ {
		var advanced bool
		e.db.QueryRow(context.Background(), "SELECT confirmed_flush_lsn > $1::pg_lsn, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'supabase_realtime_slot'", before).Scan(&advanced, &after)
		if advanced {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("slot did not advance: %s → %s", before, after)
}

// A PostgreSQL restart keeps channels joined: subscribers get a system
// error while the database is away, "Subscribed to PostgreSQL" when changes
// flow again, and then the rows written after the restart.
func TestDatabaseRestartKeepsChannels(t *testing.T) {
	e := newEnv(t)
	s := e.startService(t, "")
	c := s.dial(t, e.keys.Anon)
	c.join("realtime:m", e.keys.Service, map[string]any{"event": "INSERT", "schema": "public", "table": "messages"})
	c.next("system", 10*time.Second)
	e.db.Close(context.Background())
	ctx := context.Background()
	if err := e.cluster.StopServer(ctx); err != nil {
		t.Fatal(err)
	}
	if m := c.next("system", 20*time.Second); !strings.Contains(string(m.Payload), `"status":"error"`) {
		t.Fatalf("want a system error, got %s", m.Payload)
	}
	if err := e.cluster.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	if m := c.next("system", 30*time.Second); !strings.Contains(string(m.Payload), "Subscribed to PostgreSQL") {
		t.Fatalf("want the resubscribed message, got %s", m.Payload)
	}
	conn, err := pgxConnect(e.cluster.URL(""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "INSERT INTO messages (room, body) VALUES ('r', 'after restart')"); err != nil {
		t.Fatal(err)
	}
	if _, rec, _ := changeRecord(t, c.next("postgres_changes", 15*time.Second)); rec["body"] != "after restart" {
		t.Fatalf("got %v", rec)
	}
}
