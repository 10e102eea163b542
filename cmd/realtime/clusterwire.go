package main

import (
	"context"

	"github.com/openrealtime/realtime/cluster"
	"github.com/openrealtime/realtime/realtime"
	"github.com/openrealtime/realtime/realtime/admin"
)

// clusterProject is one project's stack as a member of the cluster: its
// heartbeat report, the other nodes' load counted by its limits, and the
// inspector's questions to the other nodes (docs/cluster.md "Cluster-wide
// limits", "Inspector").
type clusterProject struct {
	node   *cluster.Node
	ref    string
	srv    *realtime.Server
	feed   *pgFeed // nil without a database
	broker *cluster.Broker
	// countClients makes the connection cap count the other nodes'
	// clients: a project's max_concurrent_users is the tenant's, while the
	// flag-configured project's --max-connections is this process's
	// descriptor budget and stays per node.
	countClients bool
}

// wire registers the project's report, installs the other nodes' load in
// its server and its inspector's peer queries; the returned function
// unregisters the report (at the stack's close).
func (c *clusterProject) wire(insp *admin.Inspector) (unregister func()) {
	c.srv.SetRemoteLoad(c.remote)
	c.broker.SetQueryHandler(insp.AnswerQuery)
	insp.SetPeers(c.ask)
	return c.node.SetReporter(c.ref, c.report)
}

// report is this node's heartbeat report of the project.
func (c *clusterProject) report() cluster.ProjectReport {
	l := c.srv.Load()
	r := cluster.ProjectReport{Clients: l.Clients, EventsPerSecond: l.EventsPerSecond,
		PresenceEventsPerSecond: l.PresenceEventsPerSecond, JoinsPerPeriod: l.JoinsPerPeriod}
	if c.feed != nil {
		// A node holds a slot while its source streams it: its own slot,
		// or with the hand-off the shared one (docs/cluster.md "Database
		// changes").
		st := c.feed.source.Status()
		if st.Kind == "logical" {
			r.Slot, r.SlotHolder = st.Slot, st.Connected
		}
	}
	return r
}

// remote is the other nodes' load of the project, from their last reports.
func (c *clusterProject) remote() realtime.Load {
	r := c.node.RemoteLoad(c.ref)
	l := realtime.Load{EventsPerSecond: r.EventsPerSecond, PresenceEventsPerSecond: r.PresenceEventsPerSecond, JoinsPerPeriod: r.JoinsPerPeriod}
	if c.countClients {
		l.Clients = r.Clients
	}
	return l
}

// ask sends an inspector query to the other nodes running the project.
func (c *clusterProject) ask(ctx context.Context, q []byte) []admin.PeerAnswer {
	as := c.broker.Query(ctx, q)
	out := make([]admin.PeerAnswer, len(as))
	for i, a := range as {
		out[i] = admin.PeerAnswer{Node: a.Node, Origin: a.Origin, Data: a.Data}
	}
	return out
}
