package cluster

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/openrealtime/realtime/channels"
)

// External mode: two nodes that are clients of one separately run NATS
// server carry broadcasts and presence like embedded ones.
func TestExternalNATS(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	nodes := externalNodes(t, srv.ClientURL(), "x1", "x2")
	const topic = "realtime:ext"
	_, r1 := nodes[1].subscribe(topic, false)
	awaitRoute(t, nodes[0], topic, r1)
	nodes[0].hub.BroadcastTo(topic, false, &channels.Broadcast{Event: "e", Payload: []byte("hello")})
	if p := <-r1.got; p != "hello" {
		t.Fatalf("got %q", p)
	}
	s0 := &channels.Subscription{ID: nodes[0].hub.NextID(), Topic: topic, Name: topic, PresenceKey: "k0", Writer: newRecorder(), Encoder: enc{}}
	nodes[0].hub.Subscribe(s0)
	if _, err := nodes[0].hub.Track(s0, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	s1 := &channels.Subscription{ID: nodes[1].hub.NextID(), Topic: topic, Name: topic, PresenceKey: "k1", Writer: newRecorder(), Encoder: enc{}}
	nodes[1].hub.Subscribe(s1)
	if _, err := nodes[1].hub.Track(s1, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	awaitState(t, nodes[1], s1, "k0,k1")
	awaitState(t, nodes[0], s0, "k0,k1")
}

// externalNodes starts nodes of the given names as clients of the NATS
// server at url, each with a hub on project p1's broker.
func externalNodes(t *testing.T, url string, names ...string) []*testNode {
	t.Helper()
	var nodes []*testNode
	for _, name := range names {
		node, err := Start(Config{NodeName: name, URL: url, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(node.Close)
		b, err := node.Broker("p1")
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, &testNode{node: node, hub: channels.NewHub(channels.HubConfig{Broker: b})})
	}
	return nodes
}
