package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// streamLeader is the name of the node leading the change stream, asked of
// the embedded NATS servers through the client addresses (any that
// answers), or "" when none knows one.
func streamLeader(t *testing.T, clientAddrs []string) string {
	t.Helper()
	for _, a := range clientAddrs {
		nc, err := nats.Connect("nats://"+a, nats.Timeout(time.Second), nats.MaxReconnects(0))
		if err != nil {
			continue
		}
		js, err := jetstream.New(nc)
		if err != nil {
			nc.Close()
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		names := js.StreamNames(ctx)
		for name := range names.Name() {
			if !strings.HasPrefix(name, "RT_PG_") {
				continue
			}
			if s, err := js.Stream(ctx, name); err == nil {
				if c := s.CachedInfo().Cluster; c != nil && c.Leader != "" {
					cancel()
					nc.Close()
					return c.Leader
				}
			}
		}
		cancel()
		nc.Close()
	}
	return ""
}

// With the change hand-off, killing (SIGKILL) the node that leads the
// change stream under a steady insert load: the stream elects a new leader
// while the holder publishes its batch again, and every subscriber still
// connected gets every change of its rows once, in commit order
// (docs/cluster.md "Change hand-off"). The pause is logged, not asserted:
// it is JetStream's leader election.
func TestClusterHandoffStreamLeaderLoss(t *testing.T) {
	e := newEnv(t)
	clients := []string{freeRouteAddr(t), freeRouteAddr(t), freeRouteAddr(t)}
	nodes := e.startClusterEach(t, 3, func(i int) []string {
		return []string{"--cluster-handoff", "--cluster-store-dir", t.TempDir(), "--cluster-client-listen", clients[i]}
	})
	subs := e.subscribeAll(t, nodes)
	stop := e.insertLoad(t)
	defer stop()
	e.awaitMoreRows(t, 50)
	leader := -1
	for deadline := time.Now().Add(30 * time.Second); leader < 0 && time.Now().Before(deadline); {
		name := streamLeader(t, clients)
		for i := range nodes {
			if name == nodeName(i) {
				leader = i
			}
		}
		if leader < 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if leader < 0 {
		t.Fatal("no node leads the change stream")
	}
	h := e.holder(t, nodes)
	t.Logf("stream leader node-%d, slot holder node-%d", leader+1, h+1)
	if h == leader {
		t.Fatalf("node-%d both leads the stream and holds the slot", h+1)
	}
	killedID, killedAt := e.maxTodoID(), time.Now()
	nodes[leader].kill9()
	e.awaitMoreRows(t, 100)
	logGaps(t, subs, fmt.Sprintf("SIGKILL of stream leader node-%d", leader+1), killedAt, killedID, leader)
	t.Logf("slot holder after the kill: node-%d; new stream leader: %s", e.holder(t, nodes)+1, streamLeader(t, clients))
	nodes[leader].service = e.startService(t, nodes[leader].addr, nodes[leader].args...)
	nodes[leader].awaitReady(t)
	e.awaitMoreRows(t, 50)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	e.checkExactlyOnce(t, subs, leader)
}
