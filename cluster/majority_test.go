package cluster

import (
	"testing"
	"time"
)

// hearsMajority counts nodes by name (a restarted node's two runs once),
// takes the cluster's size from the most nodes heard at once, and caps it
// by the nodes an embedded configuration lists.
func TestHearsMajority(t *testing.T) {
	n := &Node{cfg: Config{NodeName: "a", Embedded: true, ClusterListen: "0.0.0.0:6222",
		Peers: []string{"a:6222", "b:6222", "c:6222"}}, seen: map[string]time.Time{}}
	check := func(wantOK bool, wantLive, wantSize int) {
		t.Helper()
		ok, live, size := n.hearsMajority()
		if ok != wantOK || live != wantLive || size != wantSize {
			t.Fatalf("hearsMajority = %v %d/%d, want %v %d/%d", ok, live, size, wantOK, wantLive, wantSize)
		}
	}
	check(true, 1, 0) // alone since start: nothing to fence against
	n.heard("b.1")
	n.heard("c.1")
	check(true, 3, 3) // four addresses listed (own twice), three nodes heard
	n.heard("b.2")    // b restarted; its former run not expired yet
	check(true, 3, 3)
	forget(n, "c.1")
	check(true, 2, 3)
	forget(n, "b.1")
	forget(n, "b.2")
	check(false, 1, 3)
}

func forget(n *Node, origin string) {
	n.seenMu.Lock()
	delete(n.seen, origin)
	n.seenMu.Unlock()
}
