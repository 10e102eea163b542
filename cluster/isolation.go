package cluster

import (
	"time"

	"github.com/openrealtime/realtime/channels"
)

// isolatedAfter is how long a node that knew another node hears none, or
// has its NATS connection down, before it tells its clients that it is cut
// off from the cluster (docs/cluster.md "Failure behaviour implemented so
// far").
const isolatedAfter = 5 * time.Second

// isolation is the heartbeat loop's view of whether this node is cut off;
// owned by heartbeatLoop.
type isolation struct {
	downSince time.Time // when the NATS connection was first seen down; zero while up
	isolated  bool
}

// checkIsolation decides, on each heartbeat tick, whether this node is cut
// off: it knew another node and has heard none for isolatedAfter, or its
// NATS connection has been down for isolatedAfter. It is back once the
// connection is up and, if it ever knew another node, one has been heard
// within isolatedAfter. A change is told to every broker's hub.
func (n *Node) checkIsolation(now time.Time) {
	st := &n.iso
	if n.nc.IsConnected() {
		st.downSince = time.Time{}
	} else if st.downSince.IsZero() {
		st.downSince = now
	}
	n.seenMu.Lock()
	lastPeer := n.lastPeer
	n.seenMu.Unlock()
	silent := !lastPeer.IsZero() && now.Sub(lastPeer) >= isolatedAfter
	connDown := !st.downSince.IsZero() && now.Sub(st.downSince) >= isolatedAfter
	isolated := silent || connDown
	if !isolated && st.isolated && !st.downSince.IsZero() {
		isolated = true // back only once the connection is up
	}
	if isolated == st.isolated {
		return
	}
	st.isolated = isolated
	n.isolated.Store(isolated)
	kind := channels.EnvelopeRejoined
	if isolated {
		kind = channels.EnvelopeIsolated
		n.log.Warn("cluster: cut off from the other nodes; clients told that broadcasts and presence stay on this node",
			"silent_for", now.Sub(lastPeer).Round(time.Millisecond), "connected", st.downSince.IsZero())
	} else {
		n.log.Info("cluster: in contact with the other nodes again; clients told")
	}
	for _, b := range n.brokerList() {
		b.clusterState(kind)
	}
}

// Isolated reports whether the node is cut off from the cluster: it hears
// no other node, or its NATS connection is down, for isolatedAfter.
func (n *Node) Isolated() bool { return n.isolated.Load() }

// clusterState passes an EnvelopeIsolated or EnvelopeRejoined to the hub,
// unless the broker is closed or has no hub yet.
func (b *Broker) clusterState(kind channels.EnvelopeKind) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed || b.h == nil {
		return
	}
	b.h(&channels.Envelope{Kind: kind})
}
