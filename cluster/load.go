package cluster

import (
	"sync"
	"sync/atomic"
)

// reporting is a node's side of the heartbeat reports (docs/cluster.md
// "Cluster-wide limits"): the projects' report functions, which
// heartbeatLoop calls, and the other nodes' last reports, kept per origin
// and summed per project for the limits. Its zero value is ready.
type reporting struct {
	mu    sync.Mutex // guards fns, next
	fns   map[string]reporter
	next  uint64
	peers map[string]map[string]ProjectReport // origin → ref → report; guarded by Node.seenMu
	// totals is the sum of the live peers' reports by ref, rebuilt when a
	// report arrives or a peer goes down; read without a lock.
	totals atomic.Pointer[map[string]ProjectReport]
}

// reporter is one registered report function and its registration id.
type reporter struct {
	id uint64
	fn func() ProjectReport
}

// SetReporter registers fn as project ns's report: it is called once per
// heartbeat (on the heartbeat goroutine; it must not block) and its
// figures travel to the other nodes. A later call for the same ns
// replaces fn. The returned function unregisters this fn (not a later
// one) and is idempotent.
func (n *Node) SetReporter(ns string, fn func() ProjectReport) (unregister func()) {
	r := &n.rep
	r.mu.Lock()
	if r.fns == nil {
		r.fns = make(map[string]reporter)
	}
	r.next++
	id := r.next
	r.fns[ns] = reporter{id: id, fn: fn}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		if cur, ok := r.fns[ns]; ok && cur.id == id {
			delete(r.fns, ns)
		}
		r.mu.Unlock()
	}
}

// LocalReports calls every registered report function and returns the
// non-empty reports by project ref.
func (n *Node) LocalReports() map[string]ProjectReport {
	r := &n.rep
	r.mu.Lock()
	fns := make(map[string]func() ProjectReport, len(r.fns))
	for ns, f := range r.fns {
		fns[ns] = f.fn
	}
	r.mu.Unlock()
	out := make(map[string]ProjectReport, len(fns))
	for ns, fn := range fns {
		if rep := fn(); !rep.zero() {
			out[ns] = rep
		}
	}
	return out
}

// RemoteLoad returns the sum of project ns's counters in the last reports
// of the other live nodes (heard from within the last 3 s); its slot
// fields are empty. It takes no lock: cheap enough for every admission
// (docs/cluster.md "Cluster-wide limits").
func (n *Node) RemoteLoad(ns string) ProjectReport {
	if m := n.rep.totals.Load(); m != nil {
		return (*m)[ns]
	}
	return ProjectReport{}
}

// storeReport records origin's report, if origin is live (heard; not
// expired meanwhile), and rebuilds the totals.
func (n *Node) storeReport(origin string, rep map[string]ProjectReport) {
	n.seenMu.Lock()
	defer n.seenMu.Unlock()
	if _, live := n.seen[origin]; !live {
		return
	}
	if n.rep.peers == nil {
		n.rep.peers = make(map[string]map[string]ProjectReport)
	}
	n.rep.peers[origin] = rep
	n.rebuildTotalsLocked()
}

// forgetReportsLocked drops the reports of origins that went down and
// rebuilds the totals. Node.seenMu is held on entry.
func (n *Node) forgetReportsLocked(gone []string) {
	changed := false
	for _, o := range gone {
		if _, ok := n.rep.peers[o]; ok {
			delete(n.rep.peers, o)
			changed = true
		}
	}
	if changed {
		n.rebuildTotalsLocked()
	}
}

// rebuildTotalsLocked sums the live peers' reports. Node.seenMu is held on
// entry.
func (n *Node) rebuildTotalsLocked() {
	t := make(map[string]ProjectReport)
	for _, rep := range n.rep.peers {
		for ref, r := range rep {
			t[ref] = t[ref].add(ProjectReport{Clients: r.Clients, EventsPerSecond: r.EventsPerSecond,
				PresenceEventsPerSecond: r.PresenceEventsPerSecond, JoinsPerPeriod: r.JoinsPerPeriod})
		}
	}
	n.rep.totals.Store(&t)
}

// peerReportsLocked returns a copy of origin's last report. Node.seenMu
// is held on entry.
func (n *Node) peerReportsLocked(origin string) map[string]ProjectReport {
	src := n.rep.peers[origin]
	if src == nil {
		return nil
	}
	out := make(map[string]ProjectReport, len(src))
	for k, v := range src {
		out[k] = v
	}
	return out
}
