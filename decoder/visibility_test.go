package decoder

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// A batch goes to the sink without a visibility round trip; only a sink
// that asks (it reads live rows) waits, once per batch, and then finds the
// batch's rows in a new snapshot (docs/protocol.md §4.5).
func TestLogicalVisibilityOnDemand(t *testing.T) {
	d := newTestDB(t, sharedCluster(t))
	setup := connect(t, d.url)
	mustExec(t, setup, "CREATE TABLE t_plain (id int4 PRIMARY KEY)")
	mustExec(t, setup, "CREATE TABLE t_live (id int4 PRIMARY KEY)")
	reader := connect(t, d.url)

	var (
		mu      sync.Mutex
		asked   int      // batches whose sink called AwaitVisible
		missing []string // live rows not found after the wait
		seen    = map[string]bool{}
		waitErr error
	)
	sink := func(ctx context.Context, b []Change) error {
		mu.Lock()
		defer mu.Unlock()
		live := false
		for _, c := range b {
			seen[fmt.Sprintf("%s/%s", c.Rel.Table, c.New[0].Text)] = true
			live = live || c.Rel.Table == "t_live"
		}
		if !live {
			return nil
		}
		asked++
		for range 2 { // the second call must not wait again
			if err := AwaitVisible(ctx); err != nil {
				waitErr = err
			}
		}
		for _, c := range b {
			if c.Rel.Table != "t_live" {
				continue
			}
			var n int
			if err := reader.QueryRow(context.Background(), "SELECT count(*) FROM t_live WHERE id = $1", c.New[0].Text).Scan(&n); err != nil || n != 1 {
				missing = append(missing, fmt.Sprintf("%s (n=%d, err=%v)", c.New[0].Text, n, err))
			}
		}
		return nil
	}
	l, states, _ := startLogical(t, d, sink, nil)
	states.waitUps(t, 1)
	mustExec(t, setup, "ALTER PUBLICATION "+d.pub+" ADD TABLE t_plain, t_live")
	const n = 20
	for i := range n {
		mustExec(t, setup, "INSERT INTO t_plain VALUES ($1)", i)
	}
	waitFor(t, "plain rows", func() bool { mu.Lock(); defer mu.Unlock(); return seen[fmt.Sprintf("t_plain/%d", n-1)] })
	if w := l.Status().VisibilityWaits; w != 0 {
		t.Fatalf("%d visibility waits for batches whose sink read no live row, want 0", w)
	}
	for i := range n {
		tx := connect(t, d.url)
		if _, err := tx.Exec(context.Background(), "INSERT INTO t_live VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
		tx.Close(context.Background())
	}
	waitFor(t, "live rows", func() bool { mu.Lock(); defer mu.Unlock(); return seen[fmt.Sprintf("t_live/%d", n-1)] })
	mu.Lock()
	defer mu.Unlock()
	if waitErr != nil {
		t.Fatalf("AwaitVisible: %v", waitErr)
	}
	if len(missing) > 0 {
		t.Errorf("rows not visible after AwaitVisible: %v", missing)
	}
	if w := l.Status().VisibilityWaits; w != int64(asked) {
		t.Errorf("%d visibility waits for %d batches that asked, want one each", w, asked)
	}
	if AwaitVisible(context.Background()) != nil {
		t.Error("AwaitVisible outside a sink returned an error")
	}
}
