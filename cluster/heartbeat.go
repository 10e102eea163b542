package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/nats-io/nats.go"
)

// Presence liveness (docs/cluster.md "Presence"): every node publishes a
// heartbeat each heartbeatEvery; an origin not heard from for downAfter is
// down and its presence leaves every topic.
const (
	heartbeatEvery = time.Second
	downAfter      = 3 * time.Second
	// snapshotWindow is how long a node takes other nodes' snapshot
	// replies for a topic it starts following.
	snapshotWindow = 2 * time.Second
)

// maxDownOrigins bounds the remembered down origins (each restart of a node
// leaves one behind).
const maxDownOrigins = 1024

// snapshotRepeats are the times after the first snapshot request of a
// topic at which it is sent again, all within snapshotWindow.
var snapshotRepeats = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 1500 * time.Millisecond}

// newOrigin names one run of a node: its name and a random boot id, so a
// restarted node's presence is never confused with its former one's.
func newOrigin(name string) string {
	var b [6]byte
	rand.Read(b[:])
	return name + "." + hex.EncodeToString(b[:])
}

// heard records that origin is alive. An origin that had been declared
// down is back: every broker takes fresh snapshots (its state was dropped).
func (n *Node) heard(origin string) {
	if origin == n.origin {
		return
	}
	now := time.Now()
	n.seenMu.Lock()
	_, known := n.seen[origin]
	n.seen[origin] = now
	n.lastPeer = now
	_, wasDown := n.down[origin]
	delete(n.down, origin)
	if !known {
		n.peakNodes = max(n.peakNodes, n.liveNodesLocked())
	}
	n.seenMu.Unlock()
	if !known && wasDown {
		n.log.Info("cluster: node back", "origin", origin)
		for _, b := range n.brokerList() {
			b.resyncAll()
		}
	}
}

// startHeartbeats subscribes to the heartbeats and starts the loop that
// sends this node's and expires silent origins. Called by Start before
// run starts.
func (n *Node) startHeartbeats() error {
	_, err := n.nc.Subscribe(heartbeatSubject, func(m *nats.Msg) {
		kind, _, fields, err := decodeMessage(m.Data)
		if err != nil || kind != kindHeartbeat {
			n.drop(dropBadMessage, err, "subject", m.Subject)
			return
		}
		origin := string(fields[0])
		if origin == n.origin {
			return
		}
		n.heard(origin)
		if len(fields) < 2 {
			return // a heartbeat without a report
		}
		rep, err := decodeReport(fields[1])
		if err != nil {
			n.drop(dropBadMessage, err, "subject", m.Subject)
			return
		}
		n.storeReport(origin, rep)
	})
	if err != nil {
		return err
	}
	go n.heartbeatLoop()
	return nil
}

// heartbeatLoop queues a heartbeat every heartbeatEvery, carrying this
// node's report (report.go, load.go), and declares down the origins silent for
// downAfter, until Close.
func (n *Node) heartbeatLoop() {
	defer close(n.hbDone)
	t := time.NewTicker(heartbeatEvery / 2)
	defer t.Stop()
	last := time.Time{}
	for {
		select {
		case <-n.stop:
			return
		case now := <-t.C:
			if now.Sub(last) >= heartbeatEvery {
				hb := encodeFields(kindHeartbeat, 0, []byte(n.origin), encodeReport(n.LocalReports()))
				n.enqueue(outMsg{subject: heartbeatSubject, data: hb})
				last = now
			}
			n.expire(now)
			n.checkIsolation(now)
		}
	}
}

// expire declares down every origin silent for downAfter and tells each
// broker, which sends the leaves of its presence.
func (n *Node) expire(now time.Time) {
	var gone []string
	n.seenMu.Lock()
	if len(n.down) > maxDownOrigins {
		// Old runs of restarted nodes: forgetting them only means that one
		// heard again is not resynchronised, which a restart never needs.
		clear(n.down)
	}
	for o, at := range n.seen {
		if now.Sub(at) >= downAfter {
			delete(n.seen, o)
			n.down[o] = struct{}{}
			gone = append(gone, o)
		}
	}
	n.forgetReportsLocked(gone)
	n.seenMu.Unlock()
	for _, o := range gone {
		n.log.Info("cluster: node down, its presence leaves", "origin", o)
		for _, b := range n.brokerList() {
			b.originDown(o)
		}
	}
}

// brokerList is a snapshot of the node's brokers.
func (n *Node) brokerList() []*Broker {
	n.mu.Lock()
	defer n.mu.Unlock()
	bs := make([]*Broker, 0, len(n.brokers))
	for b := range n.brokers {
		bs = append(bs, b)
	}
	return bs
}
