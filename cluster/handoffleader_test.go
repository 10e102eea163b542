package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Of three nodes with a current stream, exactly one (the stream's leader)
// leaves the slot to the others (docs/cluster.md "Change hand-off").
func TestHandoffLeaderLeavesSlot(t *testing.T) {
	nodes := startNodes(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hs := make([]*Handoff, len(nodes))
	for i, n := range nodes {
		h, err := n.node.Handoff("p2")
		if err != nil {
			t.Fatal(err)
		}
		h.EnsureLoop(ctx, "db1")
		hs[i] = h
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var leaders, ready int
		var errs []error
		for _, h := range hs {
			switch err := h.Ready(ctx); {
			case err == nil:
				ready++
			case errors.Is(err, errStreamLeader):
				leaders++
			default:
				errs = append(errs, err)
			}
		}
		if leaders == 1 && ready == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d nodes refuse as the stream's leader, %d may hold the slot (errors %v); want 1 and 2", leaders, ready, errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
