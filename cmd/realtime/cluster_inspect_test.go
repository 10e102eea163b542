package main

import (
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/openrealtime/realtime/realtime/admin"
)

// adminCluster reads GET /admin/api/cluster from the service at addr.
func adminCluster(t *testing.T, addr, token string) admin.ClusterState {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/admin/api/cluster", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET /admin/api/cluster: %d %s", res.StatusCode, body)
	}
	var st admin.ClusterState
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	return st
}

// nodeNames lists the names of st.Nodes, "*" marking the node itself.
func nodeNames(st admin.ClusterState) string {
	var names []string
	for _, n := range st.Nodes {
		if n.Self {
			names = append(names, "*"+n.Name)
		} else {
			names = append(names, n.Name)
		}
	}
	return strings.Join(names, ",")
}

// awaitClusterView waits until the node at addr lists exactly want
// (nodeNames' form) and returns its view.
func awaitClusterView(t *testing.T, addr, token, want string) admin.ClusterState {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := adminCluster(t, addr, token)
		if nodeNames(st) == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s lists nodes %q, want %q: %+v", addr, nodeNames(st), want, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestInspectorSeesTheCluster: every node's inspector API names the node,
// its mode, its NATS connection and routes, and the nodes it hears from; a
// killed node drops out of the others' lists. A single node says so.
func TestInspectorSeesTheCluster(t *testing.T) {
	e := newEnv(t)
	nodes := e.startCluster(t, 3)
	tok := e.keys.Service
	for i, n := range nodes {
		want := []string{"node-1", "node-2", "node-3"}
		want[i] = ""
		others := strings.Join(strings.Fields(strings.Join(want, " ")), ",")
		st := awaitClusterView(t, n.addr, tok, "*"+nodeName(i)+","+others)
		if st.Node != nodeName(i) || st.Mode != "embedded" || !st.Connected || st.Routes < 2 {
			t.Errorf("node %d: %+v", i+1, st)
		}
		if got := strings.Join(st.RoutedTo, ","); got != others {
			t.Errorf("node %d: routed to %q, want %q", i+1, got, others)
		}
		if !strings.HasPrefix(st.Nodes[0].Origin, nodeName(i)+".") {
			t.Errorf("node %d: origin %q", i+1, st.Nodes[0].Origin)
		}
		for _, p := range st.Nodes[1:] {
			if p.LastSeen == nil || !strings.HasPrefix(p.Origin, p.Name+".") {
				t.Errorf("node %d: peer %+v", i+1, p)
			}
		}
	}
	// Each node lists, from the heartbeat reports, the one node that reads
	// the project's shared slot: the one PostgreSQL names.
	h := e.holder(t, nodes)
	if h < 0 {
		t.Fatal("no node holds the slot")
	}
	for _, n := range nodes {
		awaitSlots(t, n.addr, tok, "supabase_realtime_slot", []string{nodeName(h)})
	}
	// The project's series carry the node's name, as the cluster's do.
	mres, err := http.Get("http://" + nodes[0].metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mbody, _ := io.ReadAll(mres.Body)
	mres.Body.Close()
	for _, want := range []string{`realtime_conn_open_connections{node="node-1",transport="websocket"} `, `realtime_cluster_routes{node="node-1"} `} {
		if !strings.Contains(string(mbody), want) {
			t.Errorf("node-1's /metrics lack %s", want)
		}
	}
	// A node killed without a goodbye leaves the others' lists once its
	// heartbeats stop (docs/cluster.md "Presence").
	nodes[2].kill9()
	awaitClusterView(t, nodes[0].addr, tok, "*node-1,node-2")
	awaitClusterView(t, nodes[1].addr, tok, "*node-2,node-1")

	solo := e.startService(t, "", "--node-name", "solo")
	st := adminCluster(t, solo.addr, tok)
	if st.Node != "solo" || st.Mode != "single" || st.Connected || st.Routes != 0 || len(st.RoutedTo) != 0 || nodeNames(st) != "*solo" {
		t.Errorf("single node: %+v", st)
	}
}

func nodeName(i int) string { return "node-" + string(rune('1'+i)) }

// awaitSlots waits until the cluster view at addr lists exactly the nodes
// names as holding slot for the flag-configured project (realtime-dev).
func awaitSlots(t *testing.T, addr, token, slot string, names []string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := adminCluster(t, addr, token)
		var held []string
		for _, n := range st.Nodes {
			for _, p := range n.Projects {
				if p.Ref == "realtime-dev" && p.SlotHolder && p.Slot == slot {
					held = append(held, n.Name)
				}
			}
		}
		sort.Strings(held)
		if strings.Join(held, ",") == strings.Join(names, ",") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: slots held by %v, want %v: %+v", addr, held, names, st.Nodes)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
