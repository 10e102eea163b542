package decoder

import (
	"context"
	"testing"
)

// visibleQuery says no for a transaction that is still running (even the
// newest one, which lies at the snapshot's xmax) and yes once it committed.
func TestVisibleQuery(t *testing.T) {
	d := newTestDB(t, sharedCluster(t))
	ctx := context.Background()
	writer := connect(t, d.url)
	checker := connect(t, d.url)
	tx, err := writer.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var xid int64
	if err := tx.QueryRow(ctx, "SELECT txid_current() % 4294967296").Scan(&xid); err != nil {
		t.Fatal(err)
	}
	var visible bool
	if err := checker.QueryRow(ctx, visibleQuery, []int64{xid}).Scan(&visible); err != nil {
		t.Fatal(err)
	}
	if visible {
		t.Fatalf("running transaction %d reported visible", xid)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := checker.QueryRow(ctx, visibleQuery, []int64{xid}).Scan(&visible); err != nil {
		t.Fatal(err)
	}
	if !visible {
		t.Fatalf("committed transaction %d reported not visible", xid)
	}
	if err := checker.QueryRow(ctx, visibleQuery, []int64{}).Scan(&visible); err != nil || !visible {
		t.Fatalf("empty list: %v %v", visible, err)
	}
}
