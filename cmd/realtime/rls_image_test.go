package main

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The leaks of judging the live row instead of the committed image:
// a row inserted by bob and reassigned to alice in the same transaction
// must not reach alice with bob's content, nor bob with alice's; a row
// whose key is reused after a DELETE is judged on each image.
func TestRLSImageLeaks(t *testing.T) {
	e := newEnv(t)
	s := e.startService(t, "")
	alice := s.dial(t, e.keys.Anon)
	bob := s.dial(t, e.keys.Anon)
	alice.join("realtime:a", e.keys.User, todos)
	bob.join("realtime:b", e.keys.User2, todos)
	alice.next("system", 10*time.Second)
	bob.next("system", 10*time.Second)

	// Reassign in the same transaction: bob's INSERT carries bob's text;
	// the UPDATE makes it alice's.
	tx, err := e.db.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), "INSERT INTO todos (id, user_id, title) VALUES (95001, $1, 'bob private')", e.keys.User2ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), "UPDATE todos SET user_id = $1, title = 'now alice''s' WHERE id = 95001", e.keys.UserID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Primary-key reuse: bob's row 95002 is deleted, then alice inserts 95002.
	e.exec(t, "INSERT INTO todos (id, user_id, title) VALUES (95002, $1, 'bob secret 2')", e.keys.User2ID)
	e.exec(t, "DELETE FROM todos WHERE id = 95002")
	e.exec(t, "INSERT INTO todos (id, user_id, title) VALUES (95002, $1, 'alice 2')", e.keys.UserID)
	e.exec(t, "INSERT INTO todos (user_id, title) VALUES ($1, 'alice marker'), ($2, 'bob marker')", e.keys.UserID, e.keys.User2ID)

	want := map[*wsClient][]string{
		alice: {"UPDATE now alice's", "DELETE", "INSERT alice 2", "INSERT alice marker"},
		bob:   {"INSERT bob private", "INSERT bob secret 2", "DELETE", "INSERT bob marker"},
	}
	for c, evs := range want {
		for _, w := range evs {
			typ, rec, errs := changeRecord(t, c.next("postgres_changes", 10*time.Second))
			got := typ
			if typ != "DELETE" {
				got += " " + rec["title"].(string)
			}
			if got != w || errs != nil {
				t.Fatalf("got %q (%v), want %q", got, errs, w)
			}
		}
	}
}

// A REVOKE of a column ends the live bindings whose filter reads it with a
// system error, and a join right after it is refused like an unknown column.
func TestRevokeEndsFilterBindings(t *testing.T) {
	e := newEnv(t)
	s := e.startService(t, "")
	alice := s.dial(t, e.keys.Anon)
	filtered := map[string]any{"event": "*", "schema": "public", "table": "todos", "filter": "title=eq.x"}
	alice.join("realtime:f", e.keys.User, filtered)
	if m := alice.next("system", 10*time.Second); !strings.Contains(string(m.Payload), "Subscribed to PostgreSQL") {
		t.Fatalf("system: %s", m.Payload)
	}
	e.exec(t, "REVOKE SELECT (title) ON todos FROM authenticated")
	m := alice.next("system", 15*time.Second)
	if !strings.Contains(string(m.Payload), `"status":"error"`) || !strings.Contains(string(m.Payload), "no longer selectable") {
		t.Fatalf("after REVOKE: %s", m.Payload)
	}
	bob := s.dial(t, e.keys.Anon)
	bob.join("realtime:g", e.keys.User2, filtered)
	if m := bob.next("system", 10*time.Second); !strings.Contains(string(m.Payload), "invalid column for filter title") {
		t.Fatalf("join after REVOKE: %s", m.Payload)
	}
}

// Randomized multi-user run: concurrent inserts, reassignments and deletes
// by two users. Every INSERT/UPDATE event a user receives shows a row that
// was theirs at commit (the title carries the owner it was written with),
// and every one of theirs arrives: 0 leaked, 0 lost.
func TestRandomizedReassignments(t *testing.T) {
	e := newEnv(t)
	s := e.startService(t, "")
	users := []string{e.keys.UserID, e.keys.User2ID}
	clients := []*wsClient{s.dial(t, e.keys.Anon), s.dial(t, e.keys.Anon)}
	clients[0].join("realtime:r0", e.keys.User, todos)
	clients[1].join("realtime:r1", e.keys.User2, todos)
	for _, c := range clients {
		c.next("system", 10*time.Second)
	}
	ctx := context.Background()
	var mu sync.Mutex
	expect := map[string]int{} // user id → INSERT/UPDATE events due
	deletes := 0
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			conn, err := pgxConnect(e.cluster.URL(""))
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close(ctx)
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for i := range 60 {
				owner := users[rng.IntN(2)]
				id := 96000 + rng.IntN(40)
				title := owner + " w" + strconv.Itoa(w) + " " + strconv.Itoa(i)
				var q string
				switch rng.IntN(3) {
				case 0:
					q = "INSERT INTO todos (id, user_id, title) VALUES ($1, $2::uuid, $3::text) ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, title = excluded.title RETURNING user_id::text"
				case 1:
					q = "UPDATE todos SET user_id = $2::uuid, title = $3::text WHERE id = $1 RETURNING user_id::text"
				default:
					q = "DELETE FROM todos WHERE id = $1 AND $2::uuid IS NOT NULL AND $3::text IS NOT NULL RETURNING 'deleted'"
				}
				rows, err := conn.Query(ctx, q, id, owner, title)
				if err != nil {
					t.Error(err)
					return
				}
				for rows.Next() {
					var who string
					rows.Scan(&who)
					mu.Lock()
					if who == "deleted" {
						deletes++
					} else {
						expect[who]++
					}
					mu.Unlock()
				}
				rows.Close()
			}
		}(w)
	}
	wg.Wait()
	e.exec(t, "INSERT INTO todos (user_id, title) VALUES ($1::uuid, $3::text), ($2::uuid, $4::text)", users[0], users[1], users[0]+" marker", users[1]+" marker")
	for k, c := range clients {
		me := users[k]
		got := 0
		for {
			typ, rec, errs := changeRecord(t, c.next("postgres_changes", 20*time.Second))
			if errs != nil {
				t.Fatalf("user %d: errors %v", k, errs)
			}
			if typ == "DELETE" {
				continue
			}
			title, _ := rec["title"].(string)
			if rec["user_id"] != me || !strings.HasPrefix(title, me) {
				t.Fatalf("user %d received a row that was not theirs at commit: %s %v", k, typ, rec)
			}
			if strings.HasSuffix(title, " marker") {
				break
			}
			got++
		}
		if got != expect[me] {
			t.Fatalf("user %d: %d INSERT/UPDATE events, want %d (lost or extra)", k, got, expect[me])
		}
	}
	t.Logf("expected %v, %d deletes", expect, deletes)
}
