package main

import (
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
	for _, s := range subs {
		if s.node != h {
			gap := s.log.awaitNewer(killedAt, killedID)
			t.Logf("SIGKILL of holder node-%d: a subscriber of node-%d got the first later change %s after it", h+1, s.node+1, gap.Round(time.Millisecond))
			if gap < 0 {
				t.Errorf("node-%d: no change committed after the SIGKILL within a minute", s.node+1)
			}
		}
	}
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
	for _, s := range subs {
		if s.node != h && s.node != frozen {
			gap := s.log.awaitNewer(stoppedAt, stoppedID)
			t.Logf("SIGSTOP of node-%d: a subscriber of node-%d got the first later change %s after it", frozen+1, s.node+1, gap.Round(time.Millisecond))
			if gap < 0 {
				t.Errorf("node-%d: no change committed after the SIGSTOP within a minute", s.node+1)
			}
		}
	}
	nodes[frozen].cmd.Process.Signal(syscall.SIGCONT)
	e.awaitMoreRows(t, 50)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	e.checkExactlyOnce(t, subs, h)
}
