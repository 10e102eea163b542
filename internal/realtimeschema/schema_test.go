package realtimeschema

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openrealtime/realtime/internal/pgcluster"
)

// Migrate is idempotent, keeps yesterday…today+3 and drops partitions past
// the retention; send() stores a row and warns instead of failing.
func TestMigrateAndMaintain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	pool, err := pgxpool.New(ctx, c.URL(""))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	o := Options{Publication: true, Now: func() time.Time { return now }}
	applied, err := Migrate(ctx, pool, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 2 || applied[0] != 1 || applied[1] != 2 {
		t.Fatalf("first run applied %v, want [1 2]", applied)
	}
	if applied, err = Migrate(ctx, pool, o); err != nil || len(applied) != 0 {
		t.Fatalf("second run: applied %v, err %v", applied, err)
	}
	parts := func() map[string]bool {
		rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'realtime.messages'::regclass`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]bool{}
		for rows.Next() {
			var n string
			rows.Scan(&n)
			out[n] = true
		}
		return out
	}
	want := []string{"messages_2026_03_09", "messages_2026_03_10", "messages_2026_03_11", "messages_2026_03_12", "messages_2026_03_13"}
	got := parts()
	for _, n := range want {
		if !got[n] {
			t.Fatalf("partition %s missing; have %v", n, got)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("partitions %v, want %v", got, want)
	}

	// Five days later with the default 3-day retention: days before the
	// day of now-72h (03-12) go, 03-12 stays.
	now = now.AddDate(0, 0, 5)
	if err := Maintain(ctx, pool, o); err != nil {
		t.Fatal(err)
	}
	got = parts()
	if got["messages_2026_03_09"] || got["messages_2026_03_11"] || !got["messages_2026_03_12"] || !got["messages_2026_03_18"] {
		t.Fatalf("after retention: %v", got)
	}

	var exists bool
	if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = 'realtime')", Publication).Scan(&exists); err != nil || !exists {
		t.Fatalf("publication missing realtime.messages: %v %v", exists, err)
	}
}
