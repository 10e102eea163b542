package main

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"
)

// awaitNewer waits (up to a minute) for the first change with an id above
// id and returns how long after t0 it arrived (-1: none within the minute).
func (l *changeLog) awaitNewer(t0 time.Time, id int64) time.Duration {
	deadline := time.Now().Add(time.Minute)
	for {
		if d := l.firstNewer(t0, id); d >= 0 || time.Now().After(deadline) {
			return d
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logGaps waits (up to a minute each) for every subscriber not on the
// skipped nodes to get a change with an id above id, logs how long after
// the fault at t0 it came, and fails for a subscriber that got none.
func logGaps(t *testing.T, subs []*failoverSub, fault string, t0 time.Time, id int64, skip ...int) {
	t.Helper()
	for _, s := range subs {
		if slices.Contains(skip, s.node) {
			continue
		}
		gap := s.log.awaitNewer(t0, id)
		t.Logf("%s: a subscriber of node-%d got the first later change %s after it", fault, s.node+1, gap.Round(time.Millisecond))
		if gap < 0 {
			t.Errorf("node-%d: no change committed after the %s within a minute", s.node+1, fault)
		}
	}
}

// With the change hand-off, killing (SIGKILL) the slot holder and then
// freezing (SIGSTOP) the next holder under a steady insert load: another node
// takes the slot, and every subscriber still connected gets every change
// of its rows once, in commit order (docs/cluster.md "Change hand-off").
// The gaps (kill or freeze to the first later change delivered) are
// logged, not asserted: they hang on JetStream's leader elections.
func TestClusterHandoffFailover(t *testing.T) {
	e := newEnv(t)
	// Every node keeps its JetStream directory across its restart, as a
	// deployment does (docs/cluster.md "Change hand-off"): a node back with
	// an empty one holds no replica, and another node's failure then
	// leaves the stream without a quorum until it is back.
	nodes := e.startClusterEach(t, 3, func(int) []string {
		return []string{"--cluster-handoff", "--cluster-store-dir", t.TempDir()}
	})
	subs := e.subscribeAll(t, nodes)
	stop := e.insertLoad(t)
	defer stop()
	e.awaitMoreRows(t, 50)
	h := e.holder(t, nodes)
	if h < 0 {
		t.Fatal("no node holds the slot")
	}
	killedID, killedAt := e.maxTodoID(), time.Now()
	nodes[h].kill9()
	e.awaitMoreRows(t, 50)
	logGaps(t, subs, fmt.Sprintf("SIGKILL of holder node-%d", h+1), killedAt, killedID, h)
	t.Logf("slot holder after the kill: node-%d", e.holder(t, nodes)+1)
	nodes[h].service = e.startService(t, nodes[h].addr, nodes[h].args...)
	nodes[h].awaitReady(t)

	// Freeze whichever node holds the slot now.
	frozen := e.holder(t, nodes)
	if frozen < 0 {
		t.Fatal("no node holds the slot after the restart")
	}
	stoppedID, stoppedAt := e.maxTodoID(), time.Now()
	nodes[frozen].cmd.Process.Signal(syscall.SIGSTOP)
	e.awaitMoreRows(t, 100)
	logGaps(t, subs, fmt.Sprintf("SIGSTOP of node-%d", frozen+1), stoppedAt, stoppedID, h, frozen)
	nodes[frozen].cmd.Process.Signal(syscall.SIGCONT)
	e.awaitMoreRows(t, 50)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	e.checkExactlyOnce(t, subs, h)
}
