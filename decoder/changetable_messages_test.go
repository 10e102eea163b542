package decoder

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/openrealtime/realtime/internal/realtimeschema"
)

// messagesTopics lists "topic/private" of the realtime.messages rows of cs.
func messagesTopics(cs []Change) string {
	var out []string
	for _, c := range cs {
		if c.Rel.Schema == "realtime" && strings.HasPrefix(c.Rel.Table, "messages") {
			out = append(out, c.Kind.String()+":"+nText(c, "topic")+"/"+nText(c, "private"))
		}
	}
	return strings.Join(out, " ")
}

// On PGlite the realtime schema objects install as on PostgreSQL, and rows
// committed to realtime.messages (realtime.send, public and private) reach
// the sink through the change table's extra publication, whatever actions
// the main publication publishes; rolled-back sends never do, and sends
// committed while no consumer runs arrive once after it returns
// (docs/protocol.md §9.3).
func TestChangeTableRealtimeMessages(t *testing.T) {
	e := newPGlite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := realtimeschema.Migrate(ctx, e.db, realtimeschema.Options{Publication: true}); err != nil {
		t.Fatalf("migrate on PGlite: %v", err)
	}
	nExec(t, e.db, `CREATE TABLE ev (id int PRIMARY KEY, note text)`)
	nExec(t, e.db, `CREATE PUBLICATION supabase_realtime FOR TABLE ev WITH (publish = 'update')`)
	cfg := ChangeTableConfig{DBURL: e.srv.URL(), Retention: time.Hour, ExtraPublications: []string{realtimeschema.Publication}}
	rec := newNoteSink()
	r := startChangeTable(t, cfg, rec)

	nExec(t, e.db, `SELECT realtime.send('{"n":1}'::jsonb, 'e', 'room-a', false)`)
	nExec(t, e.db, `INSERT INTO ev VALUES (1, 'not published: inserts are off')`)
	nExec(t, e.db, `BEGIN`)
	nExec(t, e.db, `SELECT realtime.send('{"n":2}'::jsonb, 'e', 'rolled-back')`)
	nExec(t, e.db, `ROLLBACK`)
	nExec(t, e.db, `SELECT realtime.send('{"n":3}'::jsonb, 'e', 'room-b')`)
	got := rec.waitFor(t, "room-b", func(cs []Change) bool { return strings.Contains(messagesTopics(cs), "room-b") })
	if s := messagesTopics(got); s != "INSERT:room-a/f INSERT:room-b/t" {
		t.Fatalf("messages %q", s)
	}
	for _, c := range got {
		if c.Rel.Table == "ev" {
			t.Fatalf("unpublished insert delivered: %s", nDescribe([]Change{c}))
		}
	}
	if p := nText(got[0], "payload"); !strings.Contains(p, `"n": 1`) {
		t.Errorf("payload %s", p)
	}
	r.stop()

	// Committed while no consumer runs: delivered once after the restart.
	nExec(t, e.db, `SELECT realtime.send('{"n":4}'::jsonb, 'e', 'while-down')`)
	rec2 := newNoteSink()
	startChangeTable(t, cfg, rec2)
	nExec(t, e.db, `SELECT realtime.send('{"n":5}'::jsonb, 'e', 'marker')`)
	got = rec2.waitFor(t, "marker", func(cs []Change) bool { return strings.Contains(messagesTopics(cs), "marker") })
	if s := messagesTopics(got); s != "INSERT:while-down/t INSERT:marker/t" {
		t.Fatalf("after restart %q", s)
	}
}
