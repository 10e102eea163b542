package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openrealtime/realtime/realtime/phoenix"
)

// clusterNode is one node of a test cluster: the service and its
// metrics address.
type clusterNode struct {
	*service
	metrics string
	args    []string // the node's flags, to restart it
}

// startCluster starts n nodes on the env's database, routed to each other
// by their embedded NATS servers, each with the extra flags.
func (e *env) startCluster(t *testing.T, n int, extra ...string) []*clusterNode {
	t.Helper()
	return e.startClusterEach(t, n, func(int) []string { return extra })
}

// startClusterEach starts n nodes like startCluster, node i with the flags
// extra(i).
func (e *env) startClusterEach(t *testing.T, n int, extra func(i int) []string) []*clusterNode {
	t.Helper()
	routes := make([]string, n)
	for i := range routes {
		routes[i] = freeRouteAddr(t)
	}
	// A name of its own: a cluster of another test running at the same
	// time (another package) never merges with this one.
	name := fmt.Sprintf("test-%x", rand.Uint64())
	nodes := make([]*clusterNode, n)
	for i := range nodes {
		m := freeAddr(t)
		args := []string{"--cluster-embedded", "--node-name", fmt.Sprintf("node-%d", i+1), "--cluster-name", name,
			"--cluster-listen", routes[i], "--cluster-peers", strings.Join(routes, ","), "--metrics-addr", m}
		args = append(args, extra(i)...)
		nodes[i] = &clusterNode{service: e.startService(t, "", args...), metrics: m, args: args}
	}
	// A node listens at once but is ready (its change stream caught up)
	// only once enough nodes run for the stream's replicas.
	for _, n := range nodes {
		n.awaitReady(t)
	}
	return nodes
}

// freeRouteAddr is a free loopback address for a node's route listener,
// outside the ephemeral port range: peers keep dialling a dead node's route
// address, and a dial of a free ephemeral port can connect to itself (the
// kernel picks the same port as its source), which then holds the port
// the restarting node needs.
func freeRouteAddr(t *testing.T) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free route port in 20000-31999")
	return ""
}

// awaitReady waits until the node's /healthz answers 200.
func (n *clusterNode) awaitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + n.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not ready within 60s (last: %v)", n.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// received is the node's count of broadcasts taken from NATS.
func (n *clusterNode) received(t *testing.T) int {
	t.Helper()
	resp, err := http.Get("http://" + n.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "realtime_cluster_messages_received_total{") {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatalf("bad metric line %q", line)
			}
			return int(v)
		}
	}
	t.Fatalf("no realtime_cluster_messages_received_total in\n%s", body)
	return 0
}

// joinBroadcast joins topic with the given broadcast config (and private
// flag) and waits for the ok reply.
func (c *wsClient) joinBroadcast(topic, token string, private bool, bc map[string]any) {
	c.t.Helper()
	p, _ := json.Marshal(map[string]any{"access_token": token, "config": map[string]any{"private": private, "broadcast": bc}})
	c.ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, "1", "1", topic, "phx_join", p))
	m := c.next("phx_reply", 10*time.Second)
	if !strings.Contains(string(m.Payload), `"status":"ok"`) {
		c.t.Fatalf("join %s: %s", topic, m.Payload)
	}
}

// send pushes a text broadcast with payload {"i": i} (ref "r<i>").
func (c *wsClient) send(topic, event string, i int) {
	p := fmt.Sprintf(`{"type":"broadcast","event":%q,"payload":{"i":%d}}`, event, i)
	c.ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, "1", "r"+strconv.Itoa(i), topic, "broadcast", []byte(p)))
}

// nextI returns event and payload.i of the next broadcast.
func (c *wsClient) nextI() (string, int) {
	c.t.Helper()
	m := c.next("broadcast", 10*time.Second)
	var b struct {
		Event   string `json:"event"`
		Payload struct {
			I int `json:"i"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(m.Payload, &b); err != nil {
		c.t.Fatalf("bad broadcast %s", m.Payload)
	}
	return b.Event, b.Payload.I
}

// awaitCrossing has from broadcast probes on topic until every client in
// to has one, then sends a "sync" marker and drains each client up to it:
// the interest of every node has reached the sender's node, and nothing
// of the probing is left in the clients' queues.
func awaitCrossing(t *testing.T, from *wsClient, topic string, to ...*wsClient) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, c := range to {
	wait:
		for {
			if time.Now().After(deadline) {
				t.Fatal("no probe broadcast crossed the cluster")
			}
			from.send(topic, "probe", 0)
			select {
			case m := <-c.frames:
				if m.Event == "broadcast" {
					break wait
				}
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	from.send(topic, "sync", 0)
	for _, c := range to {
		for {
			if ev, _ := c.nextI(); ev == "sync" {
				break
			}
		}
	}
}

// Broadcasts from a client, from REST and from the database reach every
// node's subscribers once and in the sender's order; self and ack keep
// their one-node meaning; a node with no subscriber of a topic receives
// none of its messages (docs/cluster.md).
func TestClusterBroadcast(t *testing.T) {
	e := newEnv(t)
	nodes := e.startCluster(t, 3)
	const room = "realtime:room"
	sender := nodes[0].dial(t, e.keys.Anon)
	sender.joinBroadcast(room, e.keys.Anon, false, map[string]any{"self": false, "ack": true})
	selfish := nodes[0].dial(t, e.keys.Anon)
	selfish.joinBroadcast(room, e.keys.Anon, false, map[string]any{"self": true})
	c1 := nodes[1].dial(t, e.keys.Anon)
	c1.joinBroadcast(room, e.keys.Anon, false, map[string]any{})
	c2 := nodes[2].dial(t, e.keys.Anon)
	c2.joinBroadcast(room, e.keys.Anon, false, map[string]any{})
	awaitCrossing(t, sender, room, c1, c2)
	for {
		if ev, _ := selfish.nextI(); ev == "sync" {
			break
		}
	}

	// Client broadcasts: acked to the sender, in order everywhere, once.
	const count = 200
	for i := 1; i <= count; i++ {
		sender.send(room, "n", i)
	}
	for i := 1; i <= count; i++ {
		m := sender.next("phx_reply", 10*time.Second)
		for m.Ref == "r0" { // acks of the probes
			m = sender.next("phx_reply", 10*time.Second)
		}
		if m.Ref != "r"+strconv.Itoa(i) || !strings.Contains(string(m.Payload), `"ok"`) {
			t.Fatalf("ack %d: ref %s %s", i, m.Ref, m.Payload)
		}
	}
	// An end marker from the same sender: anything duplicated precedes it.
	sender.send(room, "end", 0)
	for name, c := range map[string]*wsClient{"self on node 1": selfish, "node 2": c1, "node 3": c2} {
		for i := 1; i <= count; i++ {
			if ev, got := c.nextI(); ev != "n" || got != i {
				t.Fatalf("%s: broadcast %d is %s %d", name, i, ev, got)
			}
		}
		if ev, _ := c.nextI(); ev != "end" {
			t.Fatalf("%s: %s after the client broadcasts, want the end marker", name, ev)
		}
	}
	// A REST broadcast through node 2 reaches every node; the sender (self
	// false) got none of its own broadcasts before it.
	restTo(t, nodes[1].addr, e.keys.Service, "room", "rest")
	for name, c := range map[string]*wsClient{"sender on node 1": sender, "self on node 1": selfish, "node 2": c1, "node 3": c2} {
		if ev, _ := c.nextI(); ev != "rest" {
			t.Fatalf("%s: %s, want the REST broadcast", name, ev)
		}
	}

	// Binary broadcast from node 3: a binary frame on the other nodes.
	frame, _ := phoenix.AppendBroadcastPush(nil, "1", "b", room, "bin", nil, phoenix.EncodingBinary, []byte{0, 1, 2, 255})
	binReader := nodes[0].dialAll(t, e.keys.Anon)
	binReader.joinBroadcast(room, e.keys.Anon, false, map[string]any{})
	awaitBinary(t, c2, binReader, frame)

	// Database broadcasts: the slot holder hands them to every node through
	// the change stream, so each
	// subscriber gets each message once, in commit order.
	var priv []*wsClient
	for _, n := range nodes {
		c := n.dialAll(t, e.keys.Service)
		c.joinBroadcast("realtime:dbroom", e.keys.Service, true, map[string]any{})
		priv = append(priv, c)
	}
	for i := 1; i <= 20; i++ {
		e.exec(t, fmt.Sprintf(`SELECT realtime.send('{"i":%d}', 'db', 'dbroom', true)`, i))
	}
	e.exec(t, `SELECT realtime.send('{"i":0}', 'end', 'dbroom', true)`)
	for k, c := range priv {
		for i := 1; i <= 20; i++ {
			if ev, got := c.nextI(); ev != "db" || got != i {
				t.Fatalf("node %d: database broadcast %d is %s %d", k+1, i, ev, got)
			}
		}
		if ev, _ := c.nextI(); ev != "end" {
			t.Fatalf("node %d: %s after the database broadcasts", k+1, ev)
		}
	}

	// Interest: node 3 has no subscriber of "lonely"; node 2 has. After
	// the crossing probe, node 3 receives nothing from NATS for "lonely".
	lonely := nodes[1].dial(t, e.keys.Anon)
	lonely.joinBroadcast("realtime:lonely", e.keys.Anon, false, map[string]any{})
	lsender := nodes[0].dial(t, e.keys.Anon)
	lsender.joinBroadcast("realtime:lonely", e.keys.Anon, false, map[string]any{})
	awaitCrossing(t, lsender, "realtime:lonely", lonely)
	before := nodes[2].received(t)
	for i := 1; i <= 50; i++ {
		lsender.send("realtime:lonely", "n", i)
	}
	for i := 1; i <= 50; i++ {
		if ev, got := lonely.nextI(); ev != "n" || got != i {
			t.Fatalf("lonely: %s %d", ev, got)
		}
	}
	// Node 1 has published all of them (node 2 got them); a marker on room
	// published after them reaches node 3 after they would have.
	sender.send(room, "marker", 0)
	if ev, _ := c2.nextI(); ev != "marker" {
		t.Fatalf("node 3 got %s before the marker", ev)
	}
	if got := nodes[2].received(t) - before; got != 1 {
		t.Fatalf("node 3 received %d messages from NATS, want 1 (the marker)", got)
	}
}

// restTo posts one broadcast {"i":0} with the event to realtime:<topic>
// through addr's REST API.
func restTo(t *testing.T, addr, key, topic, event string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"messages": []any{map[string]any{"topic": topic, "event": event, "payload": map[string]any{"i": 0}}}})
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/broadcast", strings.NewReader(string(b)))
	req.Header.Set("apikey", key)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("REST broadcast: %d %s", resp.StatusCode, body)
	}
}

// dialAll is dial whose client also reports binary broadcast frames (the
// v2 encoding of binary payloads and of broadcasts with meta) as
// "broadcast" messages: {"event":..,"payload":..} for JSON payloads,
// {"event":..,"binary":"<hex>"} for binary ones.
func (s *service) dialAll(t *testing.T, apikey string) *wsClient {
	t.Helper()
	return s.dialDecoding(t, apikey, func(data []byte) (phoenix.Message, bool) {
		f, err := phoenix.DecodeBroadcast(data)
		if err != nil {
			return phoenix.Message{}, false
		}
		var p []byte
		if f.Encoding == phoenix.EncodingBinary {
			p, _ = json.Marshal(map[string]any{"event": f.Event, "binary": hex.EncodeToString(f.Payload)})
		} else {
			p, _ = json.Marshal(map[string]any{"event": f.Event, "payload": json.RawMessage(f.Payload)})
		}
		return phoenix.Message{Topic: f.Topic, Event: "broadcast", Payload: p}, true
	})
}

// awaitBinary sends frame (a binary broadcast push) from c until r
// receives it, and checks it arrived as a binary broadcast, unchanged.
func awaitBinary(t *testing.T, c, r *wsClient, frame []byte) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c.ws.WriteMessage(websocket.BinaryMessage, frame)
		select {
		case m := <-r.frames:
			if m.Event != "broadcast" {
				continue
			}
			if want := `{"binary":"000102ff","event":"bin"}`; string(m.Payload) != want {
				t.Fatalf("binary broadcast arrived as %s, want %s", m.Payload, want)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("no binary broadcast crossed the cluster")
}
