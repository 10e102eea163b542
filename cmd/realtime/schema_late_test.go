package main

import (
	"context"
	"testing"
	"time"

	"github.com/openrealtime/realtime/internal/demo"
)

// TestRealtimeSchemaDatabaseLate starts the service while its database is
// down: once the database is up the realtime schema is created in the
// background and private channels work for ordinary users, with database
// broadcasts (before, the service gave up at start and admitted
// service_role only for its whole life).
func TestRealtimeSchemaDatabaseLate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.cluster.StopServer(ctx); err != nil {
		t.Fatal(err)
	}
	// The database comes up while the service waits for its source (it
	// serves after 30s without one).
	up := make(chan error, 1)
	go func() {
		time.Sleep(3 * time.Second)
		up <- e.cluster.StartServer(ctx)
	}()
	s := e.startService(t, "")
	if err := <-up; err != nil {
		t.Fatal(err)
	}
	db, err := pgxConnect(e.cluster.URL(""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var ready bool
		// The migrations commit in one transaction.
		if err := db.QueryRow(ctx, `SELECT to_regclass('realtime.server_migrations') IS NOT NULL`).Scan(&ready); err != nil {
			t.Fatal(err)
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("realtime schema not created within 60s of the database coming up; log:\n%s", s.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := db.Exec(ctx, demo.PrivateSQL); err != nil {
		t.Fatal(err)
	}
	c := dialV1(t, s.addr, e.keys.User)
	c.joinPrivate(t, "room:demo", e.keys.User, "")
	// The source may still be connecting: send until one arrives.
	for i := 1; ; i++ {
		if _, err := db.Exec(ctx, `SELECT realtime.send(jsonb_build_object('n', $1::int), 'e', 'room:demo')`, i); err != nil {
			t.Fatal(err)
		}
		if n, ok := c.tryNextN(t, 2*time.Second); ok {
			if n < 1 || n > i {
				t.Fatalf("got n=%d after sending 1..%d", n, i)
			}
			return
		}
		if i == 30 {
			t.Fatalf("no database broadcast reached the private channel; log:\n%s", s.output())
		}
	}
}
