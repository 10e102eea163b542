package cluster

import (
	"context"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// awaitRemote waits until n's sum of the others' reports of ns has want
// clients.
func awaitRemote(t *testing.T, n *Node, ns string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := n.RemoteLoad(ns).Clients
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: remote clients of %s %d, want %d (peers %+v)", n.Name(), ns, got, want, n.Peers())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClusterReportsTravelAndVanish: each node's heartbeat carries its
// projects' reports; the others sum them, show them per peer, follow a
// change, forget an unregistered project and a node that has gone.
func TestClusterReportsTravelAndVanish(t *testing.T) {
	nodes := startNodes(t, 3)
	var clients0 atomic.Int64
	clients0.Store(2)
	unreg0 := nodes[0].node.SetReporter("p1", func() ProjectReport {
		return ProjectReport{Clients: int(clients0.Load()), EventsPerSecond: 1.5, SlotHolder: true, Slot: "slot_n0"}
	})
	nodes[1].node.SetReporter("p1", func() ProjectReport { return ProjectReport{Clients: 3, JoinsPerPeriod: 4} })
	nodes[1].node.SetReporter("quiet", func() ProjectReport { return ProjectReport{} })

	awaitRemote(t, nodes[2].node, "p1", 5)
	if r := nodes[2].node.RemoteLoad("p1"); r.EventsPerSecond != 1.5 || r.JoinsPerPeriod != 4 || r.SlotHolder || r.Slot != "" {
		t.Fatalf("n2's sum: %+v", r)
	}
	awaitRemote(t, nodes[0].node, "p1", 3) // its own clients are not in its sum
	awaitRemote(t, nodes[1].node, "p1", 2)
	for _, p := range awaitPeers(t, nodes[2].node, "n0,n1") {
		if _, ok := p.Reports["quiet"]; ok {
			t.Errorf("%s reports an empty project", p.Name)
		}
		if p.Name == "n0" && (p.Reports["p1"].Slot != "slot_n0" || !p.Reports["p1"].SlotHolder || p.Reports["p1"].Clients != 2) {
			t.Errorf("n0's report as n2 sees it: %+v", p.Reports)
		}
	}
	if got := nodes[0].node.LocalReports(); len(got) != 1 || got["p1"].Clients != 2 {
		t.Errorf("n0's local reports: %+v", got)
	}

	clients0.Store(7)
	awaitRemote(t, nodes[2].node, "p1", 10)
	unreg0()
	unreg0() // idempotent
	awaitRemote(t, nodes[2].node, "p1", 3)
	// A replaced reporter is not removed by the old registration's
	// unregister.
	old := nodes[1].node.SetReporter("p2", func() ProjectReport { return ProjectReport{Clients: 1} })
	nodes[1].node.SetReporter("p2", func() ProjectReport { return ProjectReport{Clients: 6} })
	old()
	awaitRemote(t, nodes[2].node, "p2", 6)

	nodes[1].node.Close()
	awaitRemote(t, nodes[2].node, "p1", 0)
	awaitRemote(t, nodes[2].node, "p2", 0)
}

// TestClusterQueryScatterGather: a query reaches every other node of the
// project and returns their answers; a node that does not answer (no
// handler) only costs the wait.
func TestClusterQueryScatterGather(t *testing.T) {
	nodes := startNodes(t, 3)
	brokers := make([]*Broker, 3)
	for i, n := range nodes {
		b, err := n.node.Broker("pq")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		brokers[i] = b
		name := n.node.Name()
		b.SetQueryHandler(func(q []byte) []byte { return []byte(name + ":" + string(q)) })
	}
	awaitPeers(t, nodes[0].node, "n1,n2")
	// Subscriptions cross the routes asynchronously: ask until both answer.
	var got string
	deadline := time.Now().Add(20 * time.Second)
	for got != "n1:hello,n2:hello" {
		if time.Now().After(deadline) {
			t.Fatalf("answers %q", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		got = answers(brokers[0].Query(ctx, []byte("hello")))
		cancel()
	}
	for _, a := range brokers[0].Query(context.Background(), []byte("x")) {
		if !strings.HasPrefix(a.Origin, a.Node+".") {
			t.Errorf("answer from %q has origin %q", a.Node, a.Origin)
		}
	}

	brokers[2].SetQueryHandler(nil)
	deadline = time.Now().Add(20 * time.Second)
	for got != "n1:again" {
		if time.Now().After(deadline) {
			t.Fatalf("answers after n2 stopped answering: %q", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		got = answers(brokers[0].Query(ctx, []byte("again")))
		cancel()
	}
	brokers[0].Close()
	if a := brokers[0].Query(context.Background(), []byte("closed")); a != nil {
		t.Fatalf("closed broker answered %v", a)
	}
}

// answers lists the answers' data, sorted, comma-separated.
func answers(as []Answer) string {
	var s []string
	for _, a := range as {
		s = append(s, string(a.Data))
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}
