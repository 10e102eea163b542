package main

import (
	"flag"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// `realtime dev --nodes 3` prints three node URLs and the shared keys; a
// broadcast from a client of the first node reaches clients of the others.
func TestDevNodes(t *testing.T) {
	dev := startDevLines(t, "--addr", "127.0.0.1:0", "--nodes", "3")
	lines, exited, log := dev.lines, dev.exited, dev.log
	keysLine := regexp.MustCompile(`^  db \S+  secret \S+  anon (\S+)  service \S+  admin token \S+$`)
	nodeLine := regexp.MustCompile(`^(node-\d)  http://(\S+)  ws://(\S+)/realtime/v1/websocket$`)
	var anon string
	var addrs []string
	for len(addrs) < 3 {
		select {
		case l := <-lines:
			if m := keysLine.FindStringSubmatch(l); m != nil {
				anon = m[1]
			}
			if m := nodeLine.FindStringSubmatch(l); m != nil {
				if m[1] != "node-"+string(rune('1'+len(addrs))) || m[2] != m[3] {
					t.Fatalf("node line %q", l)
				}
				addrs = append(addrs, m[2])
			}
		case err := <-exited:
			t.Fatalf("realtime dev exited: %v", err)
		case <-time.After(4 * time.Minute):
			t.Fatal("realtime dev printed no node lines")
		}
	}
	if anon == "" {
		t.Fatal("no keys line before the node lines")
	}
	var clients []*wsClient
	for _, a := range addrs {
		c := (&service{addr: a}).dial(t, anon)
		c.joinBroadcast("realtime:room", anon, false, map[string]any{})
		clients = append(clients, c)
	}
	awaitCrossing(t, clients[0], "realtime:room", clients[1], clients[2])
	if strings.Count(log.String(), "cluster: joined") != 3 {
		t.Fatalf("want three nodes joined:\n%s", log.String())
	}
}

// `realtime dev --nodes N` passes the cluster flags to every node and gives
// each node a store directory of its own under --cluster-store-dir.
func TestDevNodeOptionsForwardClusterFlags(t *testing.T) {
	var o options
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	o.register(fs, "127.0.0.1:4000")
	dir := t.TempDir()
	err := fs.Parse([]string{"--jwt-secret", "s3cret-s3cret-s3cret-s3cret-s3cret", "--cluster-handoff", "--cluster-replicas", "2",
		"--cluster-queue", "100", "--cluster-store-dir", dir, "--metrics-addr", "127.0.0.1:9100"})
	if err != nil {
		t.Fatal(err)
	}
	routes := []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}
	opts, err := devNodeOptions(&o, "127.0.0.1", 4000, "postgres://u@127.0.0.1:5432/postgres", routes)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts) != 3 {
		t.Fatalf("%d nodes", len(opts))
	}
	for i, oi := range opts {
		name := "node-" + string(rune('1'+i))
		switch {
		case oi.NodeName != name, oi.Addr != []string{"127.0.0.1:4000", "127.0.0.1:4001", "127.0.0.1:4002"}[i]:
			t.Errorf("node %d: name %s addr %s", i, oi.NodeName, oi.Addr)
		case !oi.ClusterHandoff || oi.ClusterReplicas != 2 || oi.ClusterQueue != 100 || !oi.ClusterEmbedded:
			t.Errorf("%s: cluster flags not forwarded: handoff %v replicas %d queue %d", name, oi.ClusterHandoff, oi.ClusterReplicas, oi.ClusterQueue)
		case oi.ClusterStoreDir != filepath.Join(dir, name):
			t.Errorf("%s: store dir %s", name, oi.ClusterStoreDir)
		case oi.ClusterListen != routes[i] || oi.ClusterPeers != "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003":
			t.Errorf("%s: routes %s / %s", name, oi.ClusterListen, oi.ClusterPeers)
		case (i == 0) != (oi.MetricsAddr != ""):
			t.Errorf("%s: metrics address %q", name, oi.MetricsAddr)
		}
	}
	if o.ClusterStoreDir != dir || o.NodeName == "node-1" {
		t.Error("the dev command's own options were changed")
	}
}
