package main

import (
	"context"
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
