package admin

import (
	"reflect"
	"testing"
	"time"
)

func TestClusterSingleNode(t *testing.T) {
	f := newFixture(t, testToken)
	var st ClusterState
	f.getJSON(t, "/admin/api/cluster", &st)
	want := []ClusterNode{{Name: "node-a", Self: true}}
	if st.Node != "node-a" || st.Mode != "single" || st.Connected || st.Routes != 0 || st.RoutedTo == nil || len(st.RoutedTo) != 0 || !reflect.DeepEqual(st.Nodes, want) || st.Time.IsZero() {
		t.Fatalf("single node: %+v", st)
	}
}

func TestClusterStateFromGetter(t *testing.T) {
	f := newFixture(t, testToken)
	seen := time.Now().Add(-2 * time.Second).UTC()
	f.insp.SetCluster(func() ClusterState {
		return ClusterState{
			Node: "node-a", Mode: "embedded", Connected: true, Routes: 8, RoutedTo: []string{"node-b"},
			Nodes: []ClusterNode{
				{Name: "node-a", Origin: "node-a.01", Self: true},
				{Name: "node-b", Origin: "node-b.02", LastSeen: &seen},
			},
			Published: 7, Received: 9, Dropped: map[string]int64{"queue_full": 1},
		}
	})
	var st ClusterState
	f.getJSON(t, "/admin/api/cluster", &st)
	if st.Mode != "embedded" || !st.Connected || st.Routes != 8 || len(st.RoutedTo) != 1 || st.Published != 7 || st.Received != 9 || st.Dropped["queue_full"] != 1 || len(st.Nodes) != 2 {
		t.Fatalf("cluster: %+v", st)
	}
	b := st.Nodes[1]
	if b.Name != "node-b" || b.Self || b.LastSeen == nil || !b.LastSeen.Equal(seen) || b.LastSeenAge == nil || *b.LastSeenAge < 2 {
		t.Fatalf("peer: %+v", b)
	}
	if st.Nodes[0].LastSeenAge != nil {
		t.Fatalf("self has an age: %+v", st.Nodes[0])
	}
	f.insp.SetCluster(nil)
	f.getJSON(t, "/admin/api/cluster", &st)
	if st.Mode != "single" {
		t.Fatalf("after SetCluster(nil): %+v", st)
	}
}
