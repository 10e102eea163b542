package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Two inspectors stand for two nodes: one answers the other's query from
// its hub, and the asker's channel view includes the answer, even for a
// channel it has no subscriber of itself.
func TestChannelViewIncludesOtherNodes(t *testing.T) {
	here, there := newFixture(t, testToken), newFixture(t, testToken)
	there.subscribe(t, "lobby", "anon")
	there.subscribe(t, "lobby", "authenticated")
	var asked string
	here.insp.SetPeers(func(ctx context.Context, q []byte) []PeerAnswer {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("peer query without a deadline")
		}
		asked = string(q)
		return []PeerAnswer{
			{Node: "node-z", Origin: "node-z.02", Data: []byte("not json")},
			{Node: "node-b", Origin: "node-b.01", Data: there.insp.AnswerQuery(q)},
		}
	})
	var d ChannelDetail
	here.getJSON(t, "/admin/api/channels/lobby", &d)
	if asked != `{"channel":"lobby"}` {
		t.Fatalf("query %s", asked)
	}
	if len(d.Channels) != 0 || len(d.Subscribers) != 0 || len(d.Nodes) != 2 {
		t.Fatalf("detail: %+v", d)
	}
	b, z := d.Nodes[0], d.Nodes[1]
	if b.Node != "node-b" || b.Origin != "node-b.01" || b.SubscriberCount != 2 || len(b.Subscribers) != 2 ||
		len(b.Channels) != 1 || b.Channels[0].Topic != "realtime:lobby" || b.Channels[0].Subscribers != 2 || b.Error != "" {
		t.Fatalf("node-b: %+v", b)
	}
	if z.Node != "node-z" || !strings.HasPrefix(z.Error, "unreadable answer") || z.Subscribers == nil || z.Channels == nil {
		t.Fatalf("node-z: %+v", z)
	}
	// No node has the channel: 404 saying so.
	code, body := here.do(t, "GET", "/admin/api/channels/nowhere", "Bearer "+testToken, "")
	if code != http.StatusNotFound || !strings.Contains(string(body), "on any node that answered") {
		t.Fatalf("nowhere: %d %s", code, body)
	}
	// A single node (no peers) keeps its answer and has no nodes.
	here.insp.SetPeers(nil)
	if code, body := here.do(t, "GET", "/admin/api/channels/lobby", "Bearer "+testToken, ""); code != http.StatusNotFound || !strings.Contains(string(body), "on this node") {
		t.Fatalf("single node, channel elsewhere: %d %s", code, body)
	}
	there.subscribe(t, "solo", "anon")
	code, body = there.do(t, "GET", "/admin/api/channels/solo", "Bearer "+testToken, "")
	if code != http.StatusOK || strings.Contains(string(body), `"nodes"`) {
		t.Fatalf("single node: %d %s", code, body)
	}
}

// An answer lists at most maxPeerSubscribers subscribers and counts all;
// an unreadable query gets an error answer.
func TestAnswerQueryBounds(t *testing.T) {
	f := newFixture(t, testToken)
	for range maxPeerSubscribers + 5 {
		f.subscribe(t, "big", "anon")
	}
	var nc NodeChannel
	decode(t, f.insp.AnswerQuery([]byte(`{"channel":"big"}`)), &nc)
	if nc.SubscriberCount != maxPeerSubscribers+5 || len(nc.Subscribers) != maxPeerSubscribers {
		t.Fatalf("count %d, listed %d", nc.SubscriberCount, len(nc.Subscribers))
	}
	nc = NodeChannel{}
	decode(t, f.insp.AnswerQuery([]byte(`{`)), &nc)
	if nc.Error == "" {
		t.Fatal("unreadable query answered without an error")
	}
}

func decode(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%v in %s", err, data)
	}
}
