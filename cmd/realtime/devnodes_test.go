package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// `realtime dev --nodes 3` prints three node URLs and the shared keys; a
// broadcast from a client of the first node reaches clients of the others.
func TestDevNodes(t *testing.T) {
	argv, _ := json.Marshal([]string{"dev", "--addr", "127.0.0.1:0", "--nodes", "3"})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "REALTIME_TEST_EXEC="+string(argv))
	log := &lockedLog{}
	cmd.Stderr = log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("realtime dev output:\n%s", log.String())
		}
	})
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
