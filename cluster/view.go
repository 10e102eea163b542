package cluster

import (
	"sort"
	"strings"
	"time"
)

// Peer is another node this node hears from (docs/cluster.md "Inspector").
type Peer struct {
	// Name is the node's --node-name.
	Name string
	// Origin is the node's current run: its name and boot id.
	Origin string
	// LastSeen is when a heartbeat or any other message of it last arrived.
	LastSeen time.Time
	// Reports is its last heartbeat's report by project ref (projects with
	// nothing to report are absent); nil before its first report.
	Reports map[string]ProjectReport
}

// Mode returns "embedded" or "external".
func (n *Node) Mode() string {
	if n.cfg.Embedded {
		return "embedded"
	}
	return "external"
}

// Peers returns the other nodes heard from within the last 3 s (those whose
// presence counts), sorted by name then origin. Safe for concurrent use.
func (n *Node) Peers() []Peer {
	n.seenMu.Lock()
	ps := make([]Peer, 0, len(n.seen))
	for o, at := range n.seen {
		ps = append(ps, Peer{Name: originName(o), Origin: o, LastSeen: at, Reports: n.peerReportsLocked(o)})
	}
	n.seenMu.Unlock()
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Name != ps[j].Name {
			return ps[i].Name < ps[j].Name
		}
		return ps[i].Origin < ps[j].Origin
	})
	return ps
}

// peerCount is how many other nodes are live (Peers without the copies).
func (n *Node) peerCount() int {
	n.seenMu.Lock()
	defer n.seenMu.Unlock()
	return len(n.seen)
}

// liveNodesLocked is how many nodes are live by name, this one included (a
// restarted node's former run counts once with its new one). seenMu held.
func (n *Node) liveNodesLocked() int {
	names := map[string]bool{n.cfg.NodeName: true}
	for o := range n.seen {
		names[originName(o)] = true
	}
	return len(names)
}

// hearsMajority reports whether this node hears from more than half of the
// cluster, itself included. The cluster's size is the most nodes it heard
// at once, capped by the nodes an embedded configuration lists (with an
// external NATS, by nothing). It also returns the counts, for logs.
func (n *Node) hearsMajority() (ok bool, live, size int) {
	n.seenMu.Lock()
	live, size = n.liveNodesLocked(), n.peakNodes
	n.seenMu.Unlock()
	if c := n.cfg.nodes(); c > 0 && size > c {
		size = c
	}
	return 2*live > size, live, size
}

// Origin returns this node's current run: its name and boot id.
func (n *Node) Origin() string { return n.origin }

// originName is the node name of an origin (newOrigin's name part; node
// names have no dot).
func originName(origin string) string {
	if i := strings.LastIndexByte(origin, '.'); i >= 0 {
		return origin[:i]
	}
	return origin
}

// RoutedServers returns the names of the NATS servers (node names) the
// embedded server has at least one route to, sorted; nil with an external
// NATS. A pair of servers keeps several route connections (a pool, plus one
// per pinned account), so Stats.Routes counts more than this.
func (n *Node) RoutedServers() []string {
	if n.srv == nil {
		return nil
	}
	rz, err := n.srv.Routez(nil)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	names := []string{}
	for _, r := range rz.Routes {
		name := r.RemoteName
		if name == "" {
			name = r.RemoteID
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}
