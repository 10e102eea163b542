package main

import (
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
