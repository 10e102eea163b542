package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/openrealtime/realtime/channels"
)

// proxiedCluster is a cluster whose every route runs through a tcpProxy per
// ordered pair of nodes: via[i][j] carries node i's route to node j.
type proxiedCluster struct {
	nodes []*clusterNode
	via   [][]*tcpProxy
}

// startProxiedCluster starts n nodes like startCluster, node i with the
// flags extra(i), but each node's peers are its proxies to the others and
// no node advertises itself, so cutting the proxies cuts the routes (no
// gossiped path bypasses them).
func (e *env) startProxiedCluster(t *testing.T, n int, extra func(i int) []string) *proxiedCluster {
	t.Helper()
	routes := make([]string, n)
	for i := range routes {
		routes[i] = freeAddr(t)
	}
	pc := &proxiedCluster{via: make([][]*tcpProxy, n)}
	for i := range n {
		pc.via[i] = make([]*tcpProxy, n)
		for j := range n {
			if i != j {
				pc.via[i][j] = startProxy(t, routes[j])
			}
		}
	}
	// A cluster name of its own: another test's nodes on this machine,
	// redialling a port this cluster now uses, are refused.
	name := fmt.Sprintf("routeloss-%x", rand.Uint64())
	for i := range n {
		var peers []string
		for j := range n {
			if i != j {
				peers = append(peers, pc.via[i][j].addr())
			}
		}
		m := freeAddr(t)
		args := append([]string{"--cluster-embedded", "--node-name", fmt.Sprintf("node-%d", i+1),
			"--cluster-listen", routes[i], "--cluster-peers", strings.Join(peers, ","),
			"--cluster-advertise", "none", "--cluster-name", name, "--metrics-addr", m}, extra(i)...)
		pc.nodes = append(pc.nodes, &clusterNode{service: e.startService(t, "", args...), metrics: m, args: args})
	}
	for _, node := range pc.nodes {
		node.awaitReady(t)
	}
	return pc
}

// isolate cuts every route of node i (both directions); join restores them.
func (pc *proxiedCluster) isolate(i int) { pc.each(i, (*tcpProxy).cut) }
func (pc *proxiedCluster) join(i int)    { pc.each(i, (*tcpProxy).restore) }

func (pc *proxiedCluster) each(i int, f func(*tcpProxy)) {
	for j := range pc.nodes {
		if j != i {
			f(pc.via[i][j])
			f(pc.via[j][i])
		}
	}
}

// systemMsg is a system message's payload.
type systemMsg struct {
	Extension string `json:"extension"`
	Status    string `json:"status"`
	Message   string `json:"message"`
	Channel   string `json:"channel"`
}

// nextSystem returns c's next system message, failing on a broadcast of
// event forbidden before it.
func (c *wsClient) nextSystem(forbidden string, timeout time.Duration) systemMsg {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-c.frames:
			if !ok {
				c.t.Fatal("connection closed while waiting for a system message")
			}
			switch m.Event {
			case "system":
				var s systemMsg
				if err := json.Unmarshal(m.Payload, &s); err != nil {
					c.t.Fatalf("bad system message %s", m.Payload)
				}
				return s
			case "broadcast":
				if strings.Contains(string(m.Payload), `"event":"`+forbidden+`"`) {
					c.t.Fatalf("a %q broadcast reached a cut-off node: %s", forbidden, m.Payload)
				}
			}
		case <-deadline:
			c.t.Fatalf("no system message within %s", timeout)
		}
	}
}

// awaitChange applies pc's presence frames until its view lists want,
// failing on a system message (pc's node is not the one cut off).
func (pc *presenceClient) awaitChange(want string, timeout time.Duration) {
	pc.t.Helper()
	deadline := time.After(timeout)
	for pc.keys() != want {
		select {
		case m, ok := <-pc.frames:
			if !ok {
				pc.t.Fatalf("connection closed; view %q, want %q", pc.keys(), want)
			}
			if m.Event == "system" {
				pc.t.Fatalf("a client of a node still in the cluster got a system message: %s", m.Payload)
			}
			pc.apply(m)
		case <-deadline:
			pc.t.Fatalf("presence view %q, want %q", pc.keys(), want)
		}
	}
}

// joinsOf applies pc's presence frames for d and counts the joins of key
// among them.
func (pc *presenceClient) joinsOf(key string, d time.Duration) int {
	n := 0
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-pc.frames:
			if !ok {
				return n
			}
			if m.Event == "presence_diff" {
				var diff struct {
					Joins map[string]json.RawMessage `json:"joins"`
				}
				json.Unmarshal(m.Payload, &diff)
				if _, ok := diff.Joins[key]; ok {
					n++
				}
			}
			pc.apply(m)
		case <-deadline:
			return n
		}
	}
}

// Every route of one node of three is cut and then restored, under a
// steady insert load (docs/cluster.md "Failure behaviour implemented so
// far"): the others see its presence member leave and keep broadcasting
// among themselves; its clients are told by a system error, and by a
// system ok when it is back; every node keeps reading its own slot, so
// every postgres_changes subscriber gets every row once, in commit order.
// After the restore its member joins the others' views again once, and
// broadcasts reach it again. With the change hand-off the cut-off node's
// postgres_changes subscribers are told that changes stopped, and catch
// up once when it is back.
func TestClusterRouteLoss(t *testing.T) {
	t.Run("own slots", func(t *testing.T) { routeLoss(t, false) })
	t.Run("handoff", func(t *testing.T) { routeLoss(t, true) })
}

// routeLoss is TestClusterRouteLoss with one slot per node or, with
// handoff, the change hand-off.
func routeLoss(t *testing.T, handoff bool) {
	e := newEnv(t)
	pc := e.startProxiedCluster(t, 3, func(int) []string {
		if handoff {
			return []string{"--cluster-store-dir", t.TempDir()}
		}
		return []string{"--cluster-handoff=false"}
	})
	nodes := pc.nodes
	const lobby, room = "realtime:lobby", "realtime:room"

	w1 := joinPresence(t, nodes[0].service, e.keys.Anon, lobby, "w1")
	w2 := joinPresence(t, nodes[1].service, e.keys.Anon, lobby, "w2")
	m3 := joinPresence(t, nodes[2].service, e.keys.Anon, lobby, "m3")
	for _, p := range []*presenceClient{w1, w2, m3} {
		p.await("m3,w1,w2")
	}
	var bc [3]*wsClient
	for i := range bc {
		bc[i] = nodes[i].dial(t, e.keys.Anon)
		bc[i].joinBroadcast(room, e.keys.Anon, false, map[string]any{})
	}
	awaitCrossing(t, bc[0], room, bc[1], bc[2])
	subs := e.subscribeAll(t, nodes)
	stop := e.insertLoad(t)
	defer stop()
	e.awaitMoreRows(t, 30)

	if handoff {
		t.Logf("route loss: slot holder before the cut: node-%d", e.holder(t, nodes)+1)
	}
	// Cut node-3 off.
	cutID, cutAt := e.maxTodoID(), time.Now()
	pc.isolate(2)
	w1.awaitChange("w1,w2", 20*time.Second)
	t.Logf("route loss: node-1's client saw node-3's member leave %s after the cut", time.Since(cutAt).Round(time.Millisecond))
	w2.awaitChange("w1,w2", 20*time.Second)
	t.Logf("route loss: node-2's client saw it leave %s after the cut", time.Since(cutAt).Round(time.Millisecond))

	// node-1 and node-2 still broadcast to each other; node-3 is told it
	// is cut off, and gets none of it.
	bc[0].send(room, "cut", 1)
	if ev, i := bc[1].nextI(); ev != "cut" || i != 1 {
		t.Fatalf("node-2 got %s %d, want the broadcast sent during the cut", ev, i)
	}
	s := bc[2].nextSystem("cut", 20*time.Second)
	t.Logf("route loss: node-3's broadcast client was told %s after the cut: %+v", time.Since(cutAt).Round(time.Millisecond), s)
	if s.Extension != "system" || s.Status != "error" || s.Message != channels.IsolatedMessage || s.Channel != "room" {
		t.Fatalf("node-3's client got %+v, want the cut-off error", s)
	}
	if s := m3.nextSystem("cut", 10*time.Second); s.Status != "error" || s.Channel != "lobby" {
		t.Fatalf("node-3's presence member got %+v, want the cut-off error", s)
	}

	// Every node keeps reading its own slot; with the hand-off, the
	// others keep the stream and node-3's subscribers are told it stopped.
	e.awaitMoreRows(t, 50)
	toldAt := map[*failoverSub]int{}
	for _, sub := range subs {
		if handoff && sub.node == 2 {
			toldAt[sub] = sub.log.awaitSystem(t, 0, "error", pgDown)
			continue
		}
		if gap := sub.log.awaitNewer(cutAt, cutID); gap < 0 {
			t.Fatalf("a subscriber on node-%d got no change committed after the cut", sub.node+1)
		}
	}
	if handoff {
		t.Logf("route loss: slot holder during the cut: node-%d", e.holder(t, nodes)+1)
	}

	// Restore: node-3's member joins the others' views once, broadcasts
	// reach node-3 again, and its clients are told.
	restoredAt := time.Now()
	pc.join(2)
	w1.awaitChange("m3,w1,w2", 30*time.Second)
	t.Logf("route return: node-1's client saw node-3's member join %s after the restore", time.Since(restoredAt).Round(time.Millisecond))
	w2.awaitChange("m3,w1,w2", 30*time.Second)
	t.Logf("route return: node-2's client saw it join %s after the restore", time.Since(restoredAt).Round(time.Millisecond))
	s = bc[2].nextSystem("cut", 20*time.Second)
	t.Logf("route return: node-3's broadcast client was told %s after the restore: %+v", time.Since(restoredAt).Round(time.Millisecond), s)
	if s.Extension != "system" || s.Status != "ok" || s.Message != channels.RejoinedMessage {
		t.Fatalf("node-3's client got %+v, want the back-in-contact ok", s)
	}
	if s := m3.nextSystem("cut", 10*time.Second); s.Status != "ok" {
		t.Fatalf("node-3's presence member got %+v, want the back-in-contact ok", s)
	}
	awaitCrossing(t, bc[0], room, bc[2])
	if handoff {
		for _, sub := range subs[4:] {
			sub.log.awaitSystem(t, toldAt[sub]+1, "ok", "Subscribed to PostgreSQL")
		}
		t.Logf("route return: node-3's postgres_changes subscribers were told the feed is back %s after the restore", time.Since(restoredAt).Round(time.Millisecond))
	}
	// Snapshot replies repeat for 2 s after the resynchronisation: a
	// duplicate join would arrive within them.
	for i, w := range []*presenceClient{w1, w2} {
		if n := w.joinsOf("m3", 4*time.Second); n != 0 || w.keys() != "m3,w1,w2" {
			t.Fatalf("node-%d's client got %d more joins of m3 after it rejoined; view %q", i+1, n, w.keys())
		}
	}

	e.awaitMoreRows(t, 30)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	e.checkExactlyOnce(t, subs)
}

// pgDown is the system text of a change feed that stopped.
const pgDown = "Realtime was unable to connect to the project database"

// awaitSystem waits (up to 30 s) for a system message with status and
// message among l's from the index from on, and returns its index.
func (l *changeLog) awaitSystem(t *testing.T, from int, status, message string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l.mu.Lock()
		systems := append([]string(nil), l.systems...)
		l.mu.Unlock()
		for i := from; i < len(systems); i++ {
			var s systemMsg
			if json.Unmarshal([]byte(systems[i]), &s) == nil && s.Status == status && s.Message == message {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no system %s %q within 30s; got %q", status, message, systems)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
