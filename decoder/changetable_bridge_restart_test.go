package decoder

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Through cmd/pglite-bridge on a file-system data directory, with the source
// waking on relayed notifications only (hour-long poll): the bridge stops
// while the source runs, rows are written to the data directory while it is
// down (by a second Node process opening PGlite directly), the bridge starts
// again, and the source reconnects and resumes from its durable cursor:
// every change exactly once, in commit order, those delivered before the
// stop never again.
func TestChangeTableBridgeRestartRowsWrittenMeanwhile(t *testing.T) {
	e := newPGlite(t)
	nExec(t, e.db, `CREATE TABLE ev (id int PRIMARY KEY, note text)`)
	nExec(t, e.db, `CREATE PUBLICATION supabase_realtime FOR TABLE ev`)
	rec := newNoteSink()
	r := startChangeTable(t, ChangeTableConfig{DBURL: e.srv.URL(), PollInterval: time.Hour,
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}, rec)
	for i := 1; i <= 3; i++ {
		nExec(t, e.db, `INSERT INTO ev VALUES ($1, 'before')`, i)
	}
	before := rec.waitN(t, 3)
	// The cursor moves just after the sink returns; a stop in between would
	// (correctly) deliver the change again.
	waitConfirmed(t, r.n, before[2].Position)
	lastBefore := before[2].Position

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := e.srv.Stop(); err != nil {
		t.Fatal(err)
	}
	// Written while no bridge runs: a transaction of three, a rolled back
	// one (a gap in the ids), an update and a delete.
	if err := e.srv.ExecStopped(ctx,
		`BEGIN; INSERT INTO ev VALUES (4, 'while down'), (5, 'while down'); INSERT INTO ev VALUES (6, 'while down'); COMMIT`,
		`BEGIN; INSERT INTO ev VALUES (99, 'rolled back'); ROLLBACK`,
		`UPDATE ev SET note = 'updated while down' WHERE id = 1`,
		`DELETE FROM ev WHERE id = 2`,
	); err != nil {
		t.Fatal(err)
	}
	if got := rec.snapshot(); len(got) != 3 {
		t.Fatalf("delivered while the bridge was down: %s", nDescribe(got[3:]))
	}
	if err := e.srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	db := nConnect(t, e.srv.URL())
	nExec(t, db, `INSERT INTO ev VALUES (100, 'marker')`)
	got := rec.waitMarker(t, "note", "marker")

	var seen []string
	positions := map[uint64]bool{}
	var last uint64
	for i, c := range got {
		seen = append(seen, fmt.Sprintf("%s:%s", c.Kind, nValue(c, "id").Text))
		if positions[c.Position] {
			t.Errorf("change %d delivered twice", c.Position)
		}
		positions[c.Position] = true
		if c.Position <= last {
			t.Errorf("change %d after %d: out of order", c.Position, last)
		}
		last = c.Position
		if i >= 3 && c.Position <= lastBefore {
			t.Errorf("change %d redelivered (cursor was %d)", c.Position, lastBefore)
		}
	}
	if s := strings.Join(seen, " "); s != "INSERT:1 INSERT:2 INSERT:3 INSERT:4 INSERT:5 INSERT:6 UPDATE:1 DELETE:2 INSERT:100" {
		t.Fatalf("got %s", s)
	}
	if nText(got[6], "note") != "updated while down" {
		t.Errorf("update while down: %s", nDescribe(got[6:7]))
	}
	if got[3].CommitTime != got[5].CommitTime {
		t.Errorf("one transaction, two commit times: %v %v", got[3].CommitTime, got[5].CommitTime)
	}
	// The source saw the bridge go and come back: a second session.
	select {
	case <-r.up: // the first session's signal was consumed by startChangeTable
	case <-time.After(30 * time.Second):
		t.Fatal("no second session")
	}
	if st := r.n.Status(); st.Sessions < 2 {
		t.Errorf("status after the bridge restart: %+v", st)
	}
	// Nothing more arrives: another change goes through right after the marker.
	nExec(t, db, `INSERT INTO ev VALUES (101, 'end')`)
	end := rec.waitMarker(t, "note", "end")
	if len(end) != len(got)+1 {
		t.Errorf("after the marker: %s", nDescribe(end[len(got):]))
	}
}
