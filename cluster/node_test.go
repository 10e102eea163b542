package cluster

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/internal/pgcluster"
)

// recorder is a channels.Writer and Encoder that keeps every broadcast's
// payload.
type recorder struct{ got chan string }

func newRecorder() *recorder { return &recorder{got: make(chan string, 10000)} }

func (r *recorder) Enqueue(f channels.Frame) bool { r.got <- string(f.Data); return true }

// enc frames a broadcast as its payload; other frames are unused here.
type enc struct{}

func (enc) EncodeBroadcast(_ string, b *channels.Broadcast) (channels.Frame, bool) {
	return channels.Frame{Data: b.Payload}, true
}
func (enc) EncodePresenceDiff(_ string, diff []byte) channels.Frame {
	return channels.Frame{Data: append([]byte("diff:"), diff...)}
}
func (enc) EncodePostgresChange(string, []int64, []byte, channels.Cursor) channels.Frame {
	return channels.Frame{}
}
func (enc) EncodeSystem(string, []byte) channels.Frame { return channels.Frame{} }

// testNode is one node: its cluster membership and one project's hub.
type testNode struct {
	node *Node
	hub  *channels.Hub
}

// startNodes starts n embedded nodes routed to each other, each with a hub
// for project "p1".
func startNodes(t *testing.T, n int) []*testNode {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		port, err := pgcluster.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", port)
	}
	// A cluster name of its own, so that no other test's cluster merges.
	name := fmt.Sprintf("t%x", rand.Uint64())
	nodes := make([]*testNode, n)
	for i := range nodes {
		node, err := Start(Config{NodeName: "n" + strconv.Itoa(i), ClusterName: name, Embedded: true, ClusterListen: addrs[i], Peers: addrs, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(node.Close)
		b, err := node.Broker("p1")
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = &testNode{node: node, hub: channels.NewHub(channels.HubConfig{Broker: b})}
	}
	return nodes
}

func (tn *testNode) subscribe(topic string, self bool) (*channels.Subscription, *recorder) {
	r := newRecorder()
	s := &channels.Subscription{ID: tn.hub.NextID(), Topic: topic, Name: topic, Self: self, Writer: r, Encoder: enc{}}
	tn.hub.Subscribe(s)
	return s, r
}

// awaitRoute broadcasts probes from src until dst's recorder has one, then
// drains dst's probes: the subscription has crossed the routes.
func awaitRoute(t *testing.T, src *testNode, topic string, dst ...*recorder) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, r := range dst {
	wait:
		for {
			if time.Now().After(deadline) {
				t.Fatal("no probe crossed the cluster")
			}
			src.hub.BroadcastTo(topic, false, &channels.Broadcast{Event: "probe", Payload: []byte("probe")})
			select {
			case <-r.got:
				break wait
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// Probes still in flight arrive before the marker, which goes last.
	src.hub.BroadcastTo(topic, false, &channels.Broadcast{Event: "probe", Payload: []byte("marker")})
	for _, r := range dst {
		for p := range r.got {
			if p == "marker" {
				break
			}
		}
	}
}

func TestBroadcastCrossesNodesInOrderOnce(t *testing.T) {
	nodes := startNodes(t, 3)
	const topic = "realtime:room"
	sender, senderRec := nodes[0].subscribe(topic, false)
	_, selfRec := nodes[0].subscribe(topic, true)
	_, rec1 := nodes[1].subscribe(topic, false)
	_, rec2 := nodes[2].subscribe(topic, false)
	awaitRoute(t, nodes[0], topic, rec1, rec2)
	// Drain the local recorders of the probes (local delivery is
	// synchronous, so they are all queued by now).
	for _, r := range []*recorder{senderRec, selfRec} {
		for len(r.got) > 0 {
			<-r.got
		}
	}
	const count = 500
	for i := 0; i < count; i++ {
		nodes[0].hub.Broadcast(sender, &channels.Broadcast{Event: "n", Payload: []byte(strconv.Itoa(i))})
	}
	nodes[0].hub.Broadcast(sender, &channels.Broadcast{Event: "n", Payload: []byte("end")})
	for name, r := range map[string]*recorder{"self": selfRec, "node1": rec1, "node2": rec2} {
		for i := 0; ; i++ {
			p := <-r.got
			if p == "end" {
				if i != count {
					t.Fatalf("%s: %d messages before the end, want %d", name, i, count)
				}
				break
			}
			if p != strconv.Itoa(i) {
				t.Fatalf("%s: message %d is %q", name, i, p)
			}
		}
	}
	if len(senderRec.got) != 0 {
		t.Fatalf("the sender without self got %d of its own broadcasts", len(senderRec.got))
	}
	// Node 0 delivers locally and never takes its own messages back.
	if n := nodes[0].node.Stats().Received; n != 0 {
		t.Fatalf("sending node received %d messages from NATS", n)
	}
}

func TestNodeWithoutSubscribersReceivesNothing(t *testing.T) {
	nodes := startNodes(t, 3)
	_, rec1 := nodes[1].subscribe("realtime:a", false)
	awaitRoute(t, nodes[0], "realtime:a", rec1)
	// Node 2 once had a subscriber of b; it left, so its interest ends.
	s2, rec2 := nodes[2].subscribe("realtime:b", false)
	awaitRoute(t, nodes[0], "realtime:b", rec2)
	nodes[2].hub.Unsubscribe(s2)
	// Unsubscribing is asynchronous: wait until a probe sent after it no
	// longer reaches node 2 by sending through a topic node 2 still wants.
	_, rec2c := nodes[2].subscribe("realtime:c", false)
	awaitRoute(t, nodes[0], "realtime:c", rec2c)
	before := nodes[2].node.Stats().Received
	for i := 0; i < 100; i++ {
		nodes[0].hub.BroadcastTo("realtime:a", false, &channels.Broadcast{Event: "e", Payload: []byte("a")})
		nodes[0].hub.BroadcastTo("realtime:b", false, &channels.Broadcast{Event: "e", Payload: []byte("b")})
	}
	// A marker on c, queued after them, tells when they would have come.
	nodes[0].hub.BroadcastTo("realtime:c", false, &channels.Broadcast{Event: "e", Payload: []byte("end")})
	if p := <-rec2c.got; p != "end" {
		t.Fatalf("node 2 got %q on c", p)
	}
	if got := nodes[2].node.Stats().Received - before; got != 1 {
		t.Fatalf("node 2 received %d messages, want only the marker", got)
	}
	for i := 0; i < 100; i++ {
		if p := <-rec1.got; p != "a" {
			t.Fatalf("node 1 got %q", p)
		}
	}
}

// testLogger logs the node's warnings and errors through t.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
