package cluster

import (
	"strings"
	"testing"
	"time"
)

// peerNames is the names of p, comma-separated.
func peerNames(p []Peer) string {
	var names []string
	for _, x := range p {
		names = append(names, x.Name)
	}
	return strings.Join(names, ",")
}

// awaitPeers waits until n's peers are exactly want (names, sorted).
func awaitPeers(t *testing.T, n *Node, want string) []Peer {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		p := n.Peers()
		if peerNames(p) == want {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: peers %q, want %q", n.Name(), peerNames(p), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPeersFromHeartbeats: each node lists the others from their
// heartbeats, with their current origin, and drops a node that has left.
func TestPeersFromHeartbeats(t *testing.T) {
	nodes := startNodes(t, 3)
	if m := nodes[0].node.Mode(); m != "embedded" {
		t.Errorf("mode %q, want embedded", m)
	}
	awaitPeers(t, nodes[1].node, "n0,n2")
	if r := strings.Join(nodes[1].node.RoutedServers(), ","); r != "n0,n2" {
		t.Errorf("n1 routes to %q, want n0,n2", r)
	}
	p := awaitPeers(t, nodes[0].node, "n1,n2")
	for i, want := range []*Node{nodes[1].node, nodes[2].node} {
		if p[i].Origin != want.Origin() || !strings.HasPrefix(p[i].Origin, p[i].Name+".") {
			t.Errorf("peer %s has origin %q, want %q", p[i].Name, p[i].Origin, want.Origin())
		}
		if p[i].LastSeen.IsZero() {
			t.Errorf("peer %s: no last-seen time", p[i].Name)
		}
	}
	nodes[2].node.Close()
	awaitPeers(t, nodes[0].node, "n1")
	awaitPeers(t, nodes[1].node, "n0")
}
