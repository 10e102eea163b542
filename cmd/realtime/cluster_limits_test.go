package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openrealtime/realtime/internal/demo"
	"github.com/openrealtime/realtime/realtime/admin"
)

// adminGetHost answers GET path on the service at addr for the project
// of host, with the admin token.
func adminGetHost(t *testing.T, addr, host, token, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = host
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, body
}

// projectClients is what the cluster view at addr says node has of
// project ref's clients (-1: the node is not listed).
func projectClients(t *testing.T, addr, host, token, node, ref string) int {
	t.Helper()
	p, listed := projectOn(t, addr, host, token, node, ref)
	if !listed {
		return -1
	}
	return p.Clients
}

// awaitProjectOn polls the cluster view at addr (up to 30 s) until what it
// says of project ref on node satisfies ok; what names it in the failure.
func awaitProjectOn(t *testing.T, addr, host, token, node, ref, what string, ok func(admin.ClusterProject) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, _ := projectOn(t, addr, host, token, node, ref)
		if ok(p) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("never heard %s: %+v", what, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// projectOn is what the cluster view at addr says of project ref on node;
// listed is false when the node is not.
func projectOn(t *testing.T, addr, host, token, node, ref string) (p admin.ClusterProject, listed bool) {
	t.Helper()
	code, body := adminGetHost(t, addr, host, token, "/admin/api/cluster")
	if code != 200 {
		t.Fatalf("GET /admin/api/cluster: %d %s", code, body)
	}
	var st admin.ClusterState
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	for _, n := range st.Nodes {
		if n.Name != node {
			continue
		}
		for _, p := range n.Projects {
			if p.Ref == ref {
				return p, true
			}
		}
		return admin.ClusterProject{Ref: ref}, true
	}
	return admin.ClusterProject{}, false
}

// awaitProjectClients polls the cluster view at addr until it says node
// has want clients of ref: the report window has passed.
func awaitProjectClients(t *testing.T, addr, host, token, node, ref string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := projectClients(t, addr, host, token, node, ref)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s says %s has %d clients of %s, want %d", addr, node, got, ref, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startProjectPair starts two clustered nodes (node-a, node-b) serving one
// project ref with the given limit lines (YAML, each ending in \n, at the
// project's indentation) and waits until both serve it; it returns the
// project's keys and the nodes.
func startProjectPair(t *testing.T, ref, limits string) (demo.Keys, *service, *service) {
	t.Helper()
	keys, err := demo.MakeKeys(demo.NewSecret(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	env := "SECRET_" + strings.ToUpper(ref)
	t.Setenv(env, keys.Secret)
	file := filepath.Join(t.TempDir(), "projects.yaml")
	body := "projects:\n  - ref: " + ref + "\n    jwt_secret: ${" + env + "}\n" + limits
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	routes := []string{freeAddr(t), freeAddr(t)}
	nodes := make([]*service, 2)
	for i, name := range []string{"node-a", "node-b"} {
		nodes[i] = launchProjectsOnly(t, file, "--admin-token", "cluster-admin", "--cluster-embedded", "--node-name", name,
			"--cluster-listen", routes[i], "--cluster-peers", strings.Join(routes, ","))
	}
	for _, n := range nodes {
		waitProjectReady(t, n.addr, ref)
	}
	return keys, nodes[0], nodes[1]
}

// TestClusterLimitsAndInspector: a project's max_concurrent_users counts
// every node's clients once their reports have arrived (docs/cluster.md
// "Cluster-wide limits"), and one node's inspector shows the other's
// clients and a channel's subscribers there.
func TestClusterLimitsAndInspector(t *testing.T) {
	const tok, host = "cluster-admin", "cl.localhost"
	keys, a, b := startProjectPair(t, "cl", "    max_concurrent_users: 3\n")

	a1, _, err := dialHost(t, a.addr, host, keys.Anon)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dialHost(t, a.addr, host, keys.Anon); err != nil {
		t.Fatal(err)
	}
	joinAck(t, a1, "realtime:room", keys.Anon)
	awaitProjectClients(t, a.addr, host, tok, "node-a", "cl", 2) // its own, current
	awaitProjectClients(t, b.addr, host, tok, "node-a", "cl", 2) // from a's heartbeat

	// 2 on a + 1 on b = 3: b's second client is over the limit.
	if _, _, err := dialHost(t, b.addr, host, keys.Anon); err != nil {
		t.Fatalf("first client on b: %v", err)
	}
	_, resp, err := dialHost(t, b.addr, host, keys.Anon)
	if err == nil || resp == nil || resp.StatusCode != 429 {
		t.Fatalf("second client on b with 2 on a, max_concurrent_users 3: %v %v", resp, err)
	}
	if body, _ := io.ReadAll(resp.Body); !strings.Contains(string(body), "Too many connected users") {
		t.Fatalf("429 body: %s", body)
	}
	// a counts b's client once b's report arrives.
	awaitProjectClients(t, a.addr, host, tok, "node-b", "cl", 1)
	if _, resp, err := dialHost(t, a.addr, host, keys.Anon); err == nil || resp == nil || resp.StatusCode != 429 {
		t.Fatalf("third client on a with 1 on b: %v %v", resp, err)
	}

	// b's inspector: the channel has no subscriber on b, one on a.
	var detail admin.ChannelDetail
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := adminGetHost(t, b.addr, host, tok, "/admin/api/channels/room")
		detail = admin.ChannelDetail{}
		json.Unmarshal(body, &detail)
		if code == 200 && len(detail.Nodes) == 1 && detail.Nodes[0].SubscriberCount == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b's channel view: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	n := detail.Nodes[0]
	if len(detail.Subscribers) != 0 || len(detail.Channels) != 0 || n.Node != "node-a" || !strings.HasPrefix(n.Origin, "node-a.") ||
		len(n.Channels) != 1 || n.Channels[0].Topic != "realtime:room" || n.Channels[0].Subscribers != 1 ||
		len(n.Subscribers) != 1 || n.Subscribers[0].Transport != "websocket" {
		t.Fatalf("b's view of the channel: %+v", detail)
	}
	if code, body := adminGetHost(t, b.addr, host, tok, "/admin/api/channels/nowhere"); code != 404 || !strings.Contains(string(body), "on any node that answered") {
		t.Fatalf("a channel on no node: %d %s", code, body)
	}

	// a client leaving a frees its place on b once a reports it.
	a1.ws.Close()
	awaitProjectClients(t, b.addr, host, tok, "node-a", "cl", 1)
	if _, _, err := dialHost(t, b.addr, host, keys.Anon); err != nil {
		t.Fatalf("client on b after one left a: %v", err)
	}
}

// TestClusterJoinRateCountsEveryNode: the project-wide joins/s counter
// adds the other nodes' means: 12 joins on a and 1 on b under a limit of
// 10 trip b when its period ends, which b's own join never would.
func TestClusterJoinRateCountsEveryNode(t *testing.T) {
	const tok, host = "cluster-admin", "cj.localhost"
	keys, a, b := startProjectPair(t, "cj", "    max_joins_per_second: 10\n    max_channels_per_client: 100\n")
	awaitProjectClients(t, b.addr, host, tok, "node-a", "cj", 0) // b hears a

	ca, _, err := dialHost(t, a.addr, host, keys.Anon)
	if err != nil {
		t.Fatal(err)
	}
	cb, _, err := dialHost(t, b.addr, host, keys.Anon)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if m := joinOnce(ca, itoa(1+i), fmt.Sprintf("realtime:room-%d", i), keys.Anon); !strings.Contains(string(m.Payload), `"status":"ok"`) {
			t.Fatalf("join %d on a: %s", i, m.Payload)
		}
	}
	if m := joinOnce(cb, "1", "realtime:room-b", keys.Anon); !strings.Contains(string(m.Payload), `"status":"ok"`) {
		t.Fatalf("join on b: %s", m.Payload)
	}
	// a's period ends: its report says 12 joins per period.
	awaitProjectOn(t, b.addr, host, tok, "node-a", "cj", "a's joins", func(p admin.ClusterProject) bool { return p.JoinsPerPeriod >= 10 })
	// b's period ends about when a's did: 1 here + 12 on a >= 10.
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("b's joins/s limit never tripped with a's joins counted")
		}
		c, resp, err := dialHost(t, b.addr, host, keys.Anon)
		if err == nil {
			c.ws.Close()
		} else if resp != nil && resp.StatusCode == 429 {
			if body, _ := io.ReadAll(resp.Body); string(body) != "{\"error\":\"Too many joins per second\"}\n" {
				t.Fatalf("429 body %q", body)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m := joinOnce(cb, "2", "realtime:late", keys.Anon); !strings.Contains(string(m.Payload), `"reason":"ClientJoinRateLimitReached: Too many joins per second"`) {
		t.Fatalf("join on b over the cluster's joins: %s", m.Payload)
	}
}

// TestClusterEventsShareByDemand: max_events_per_second is shared by the
// nodes' demand: while a keeps asking for 40 events/s (REST batches), a
// batch of 5 on b is refused under a limit of 10, which b alone would
// admit (docs/cluster.md "Cluster-wide limits").
func TestClusterEventsShareByDemand(t *testing.T) {
	const tok, host = "cluster-admin", "ce.localhost"
	keys, a, b := startProjectPair(t, "ce", "    max_events_per_second: 10\n")
	// Alone, b admits a batch of 5 under 10/s.
	if code, body := restBroadcast(t, b.addr, host, keys.Anon, 5); code != 202 {
		t.Fatalf("b alone: %d %s", code, body)
	}

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // a asks for 40 events/s until the test ends
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				restBroadcastQuiet(a.addr, host, keys.Anon, 4)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })

	awaitProjectOn(t, b.addr, host, tok, "node-a", "ce", "a's demand", func(p admin.ClusterProject) bool { return p.EventsPerSecond >= 20 })
	if code, body := restBroadcast(t, b.addr, host, keys.Anon, 5); code != 429 || !strings.Contains(body, `"message":"You have exceeded your rate limit"`) {
		t.Fatalf("b's batch of 5 while a asks for 40/s under 10/s: %d %s", code, body)
	}
}

// restBroadcastQuiet posts a batch of n messages like restBroadcast,
// ignoring the answer (from a goroutine other than the test's).
func restBroadcastQuiet(addr, host, key string, n int) {
	if resp, err := http.DefaultClient.Do(restBroadcastRequest(addr, host, key, n)); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
