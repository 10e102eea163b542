package main

import (
	"strings"
	"testing"
	"time"
)

// The LIKE filter that stalled the feed (issue #13): the 100 KB pattern is
// refused at subscribe time with the cap's text, a pattern at the cap runs
// against 200 KB rows with PostgreSQL's verdicts, and another subscriber
// keeps receiving every row.
func TestHostileLikeFilter(t *testing.T) {
	e := newEnv(t)
	s := e.startService(t, "")
	binding := func(filter string) map[string]any {
		return map[string]any{"event": "INSERT", "schema": "public", "table": "messages", "filter": filter}
	}

	refused := s.dial(t, e.keys.Anon)
	refused.join("realtime:h1", e.keys.Anon, binding("body=like.%"+strings.Repeat("a", 100<<10)+"b"))
	m := refused.next("system", 10*time.Second)
	if want := "Error parsing `filter` params: filter value too long. Maximum 4096 bytes"; !strings.Contains(string(m.Payload), want) ||
		!strings.Contains(string(m.Payload), `"status":"error"`) {
		t.Fatalf("oversized filter: %s", m.Payload)
	}

	hostile := s.dial(t, e.keys.Anon)
	hostile.join("realtime:h2", e.keys.Anon, binding("body=like.%"+strings.Repeat("a", 4000)+"b%"))
	victim := s.dial(t, e.keys.Anon)
	victim.join("realtime:v", e.keys.Anon, binding(""))
	for _, c := range []*wsClient{hostile, victim} {
		if m := c.next("system", 10*time.Second); !strings.Contains(string(m.Payload), "Subscribed to PostgreSQL") {
			t.Fatalf("system: %s", m.Payload)
		}
	}
	long := strings.Repeat("a", 200_000)
	e.exec(t, "INSERT INTO messages (room, body) VALUES ('r', $1), ('r', $2), ('r', 'marker')", long, long+"b")
	for _, want := range []string{long, long + "b", "marker"} {
		_, rec, errs := changeRecord(t, victim.next("postgres_changes", 30*time.Second))
		if rec["body"] != want || errs != nil {
			t.Fatalf("victim got a %d-byte body (%v), want %d bytes", len(rec["body"].(string)), errs, len(want))
		}
	}
	// The hostile subscriber's first event is the only row its pattern matches.
	_, rec, _ := changeRecord(t, hostile.next("postgres_changes", 30*time.Second))
	if rec["body"] != long+"b" {
		t.Fatalf("hostile filter delivered a %d-byte body", len(rec["body"].(string)))
	}
	var pg bool
	if err := e.db.QueryRow(t.Context(), "SELECT $1::text LIKE $2", long+"b", "%"+strings.Repeat("a", 4000)+"b%").Scan(&pg); err != nil || !pg {
		t.Fatalf("PostgreSQL disagrees: %v %v", pg, err)
	}
}
