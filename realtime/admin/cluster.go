package admin

import (
	"net/http"
	"time"
)

// ClusterState is the body of GET /admin/api/cluster (docs/inspector.md
// "Cluster").
type ClusterState struct {
	// Node is this node's name (--node-name).
	Node string `json:"node"`
	// Mode is "single" (no cluster), "embedded" or "external".
	Mode string `json:"mode"`
	// Connected says whether the node's NATS connection is up; false for a
	// single node.
	Connected bool `json:"connected"`
	// Routes is the embedded NATS server's count of route connections (0
	// otherwise); a pair of servers keeps several.
	Routes int `json:"routes"`
	// RoutedTo names the servers (nodes) the embedded NATS server has a
	// route to; empty otherwise.
	RoutedTo []string `json:"routed_to"`
	// Nodes lists the nodes this node knows, itself first, then the others
	// by name: those it heard from within the last 3 s.
	Nodes []ClusterNode `json:"nodes"`
	// Published and Received count messages sent to and taken from NATS.
	Published int64 `json:"published"`
	Received  int64 `json:"received"`
	// Dropped counts messages lost for the other nodes, by class.
	Dropped map[string]int64 `json:"dropped"`
	Time    time.Time        `json:"time"`
}

// ClusterNode is one node of ClusterState.Nodes.
type ClusterNode struct {
	// Name is the node's --node-name.
	Name string `json:"name"`
	// Origin is the node's current run (name and boot id); empty for a
	// single node.
	Origin string `json:"origin,omitempty"`
	// Self marks this node.
	Self bool `json:"self"`
	// LastSeen is when the node was last heard from; absent for Self.
	LastSeen *time.Time `json:"last_seen,omitempty"`
	// LastSeenAge is the age of LastSeen at Time, in seconds.
	LastSeenAge *float64 `json:"last_seen_age_seconds,omitempty"`
	// Projects are the node's figures per project, from its last heartbeat
	// report (this node's: current), by ref; projects with no clients, no
	// rates and no slot are left out. Absent on a single node.
	Projects []ClusterProject `json:"projects,omitempty"`
}

// ClusterProject is one project's figures on one node (docs/cluster.md
// "Cluster-wide limits").
type ClusterProject struct {
	// Ref is the project's ref.
	Ref string `json:"ref"`
	// Clients are the node's open WebSocket connections and SSE streams.
	Clients int `json:"clients"`
	// EventsPerSecond and PresenceEventsPerSecond are the node's rates of
	// client broadcasts and of tracks and untracks asked for, admitted or
	// refused (counted only while the project's limit is on).
	EventsPerSecond         float64 `json:"events_per_second"`
	PresenceEventsPerSecond float64 `json:"presence_events_per_second"`
	// JoinsPerPeriod is the node's mean of joins per 5 s (counted only
	// while the project's join limit is on).
	JoinsPerPeriod float64 `json:"joins_per_period"`
	// SlotHolder says the node holds the project's replication slot, Slot
	// names it.
	SlotHolder bool   `json:"slot_holder"`
	Slot       string `json:"slot,omitempty"`
}

// SetCluster installs the getter of the cluster state shown by
// /admin/api/cluster; nil (the default) shows a single node named
// Config.NodeName. It may be called at any time.
func (i *Inspector) SetCluster(state func() ClusterState) {
	if state == nil {
		i.cluster.Store(nil)
		return
	}
	i.cluster.Store(&state)
}

// clusterState builds the cluster view at now.
func (i *Inspector) clusterState(now time.Time) ClusterState {
	var st ClusterState
	if p := i.cluster.Load(); p != nil {
		st = (*p)()
	} else {
		st = ClusterState{Node: i.cfg.NodeName, Mode: "single", Nodes: []ClusterNode{{Name: i.cfg.NodeName, Self: true}}}
	}
	if st.Dropped == nil {
		st.Dropped = map[string]int64{}
	}
	if st.RoutedTo == nil {
		st.RoutedTo = []string{}
	}
	if st.Nodes == nil {
		st.Nodes = []ClusterNode{}
	}
	for k := range st.Nodes {
		if n := &st.Nodes[k]; n.LastSeen != nil {
			age := max(now.Sub(*n.LastSeen).Seconds(), 0)
			n.LastSeenAge = &age
		}
	}
	st.Time = now.UTC()
	return st
}

func (i *Inspector) handleCluster(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, i.clusterState(time.Now()))
}
