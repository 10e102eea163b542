package cluster

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openrealtime/realtime/internal/pgcluster"
)

// logBuffer keeps what a logger wrote.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Two embedded servers that list each other but carry different cluster
// names refuse each other's routes (docs/cluster.md "Modes").
func TestClusterNamesKeepClustersApart(t *testing.T) {
	addrs := make([]string, 2)
	for i := range addrs {
		port, err := pgcluster.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", port)
	}
	var logs [2]*logBuffer
	var nodes [2]*Node
	for i, name := range []string{"blue", "green"} {
		logs[i] = &logBuffer{}
		n, err := Start(Config{NodeName: fmt.Sprintf("n%d", i), Embedded: true, ClusterName: name,
			ClusterListen: addrs[i], Peers: addrs, Logger: slog.New(slog.NewTextHandler(logs[i], nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		nodes[i] = n
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs[0].String()+logs[1].String(), "does not match") {
		if time.Now().After(deadline) {
			t.Fatalf("no route refused within 30s; logs:\n%s\n%s", logs[0], logs[1])
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, n := range nodes {
		if r := n.Stats().Routes; r != 0 {
			t.Fatalf("node %d has %d routes to a cluster of another name", i, r)
		}
	}
}
