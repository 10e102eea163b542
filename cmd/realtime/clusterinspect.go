package main

import (
	"sort"
	"time"

	"github.com/openrealtime/realtime/cluster"
	"github.com/openrealtime/realtime/realtime/admin"
)

// clusterState returns the getter of the inspector's cluster view
// (GET /admin/api/cluster, docs/inspector.md "Cluster") for node.
func clusterState(node *cluster.Node) func() admin.ClusterState {
	return func() admin.ClusterState {
		s := node.Stats()
		st := admin.ClusterState{
			Node: node.Name(), Mode: node.Mode(), Connected: s.Connected, Routes: s.Routes, RoutedTo: node.RoutedServers(),
			Nodes:     []admin.ClusterNode{{Name: node.Name(), Origin: node.Origin(), Self: true, Projects: clusterProjects(node.LocalReports())}},
			Published: s.Published, Received: s.Received, Dropped: s.Dropped,
		}
		for _, p := range node.Peers() {
			seen := p.LastSeen.UTC().Truncate(time.Millisecond)
			st.Nodes = append(st.Nodes, admin.ClusterNode{Name: p.Name, Origin: p.Origin, LastSeen: &seen, Projects: clusterProjects(p.Reports)})
		}
		return st
	}
}

// clusterProjects lists a node's reports by ref.
func clusterProjects(reports map[string]cluster.ProjectReport) []admin.ClusterProject {
	out := make([]admin.ClusterProject, 0, len(reports))
	for ref, r := range reports {
		out = append(out, admin.ClusterProject{Ref: ref, Clients: r.Clients, EventsPerSecond: r.EventsPerSecond,
			PresenceEventsPerSecond: r.PresenceEventsPerSecond, JoinsPerPeriod: r.JoinsPerPeriod, SlotHolder: r.SlotHolder, Slot: r.Slot})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out
}
