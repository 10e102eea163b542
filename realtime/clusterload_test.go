package realtime

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The other nodes' rate counts against the events/s limit: with 7/s
// reported elsewhere, a limit of 10 leaves 3 here; rate reports what was
// admitted.
func TestSecondRateCountsOtherNodes(t *testing.T) {
	var r secondRate
	now := time.Unix(1000, 0)
	got := 0
	for range 10 {
		if r.allow(now, 1, 10, 7) {
			got++
		}
	}
	if got != 3 {
		t.Fatalf("admitted %d with 7/s elsewhere under 10/s, want 3", got)
	}
	if rate := r.rate(now.Add(500 * time.Millisecond)); rate != 3 {
		t.Fatalf("rate %v, want 3", rate)
	}
	// Half of the previous second still lies in the last second.
	if rate := r.rate(now.Add(1500 * time.Millisecond)); rate != 1.5 {
		t.Fatalf("rate half a second into the next second %v, want 1.5", rate)
	}
	if rate := r.rate(now.Add(5 * time.Second)); rate != 0 {
		t.Fatalf("rate after a quiet while %v, want 0", rate)
	}
}

// The other nodes' mean joins per period count when a period ends; mean
// reports this node's figure without changing the counter.
func TestJoinRateCountsOtherNodes(t *testing.T) {
	var r joinRate
	remote := func() float64 { return 6 }
	r.remote.Store(&remote)
	t0 := time.Unix(1000, 0)
	for range 5 {
		if ok, _ := r.allow(t0, 10); !ok {
			t.Fatal("refused in the first period")
		}
	}
	if m := r.mean(t0.Add(joinTick)); m != 5 {
		t.Fatalf("mean at the period's end %v, want 5", m)
	}
	if m := r.mean(t0.Add(2 * joinTick)); m != 2.5 {
		t.Fatalf("mean a period later %v, want 2.5 (5, 0)", m)
	}
	if r.count.Load() != 5 || r.n != 0 {
		t.Fatal("mean changed the counter")
	}
	// 5 here + 6 elsewhere >= 10: tripped.
	if ok, tripped := r.allow(t0.Add(joinTick), 10); ok || !tripped {
		t.Fatalf("5 here and 6 elsewhere under 10: ok=%v tripped=%v", ok, tripped)
	}
	r.remote.Store(nil)
	r.reset()
	for range 5 {
		r.allow(t0, 10)
	}
	if ok, _ := r.allow(t0.Add(joinTick), 10); !ok {
		t.Fatal("5 joins alone refused under 10")
	}
	var idle joinRate
	if idle.mean(t0) != 0 {
		t.Fatal("an unused counter has a mean")
	}
}

// On a node of a cluster the other nodes' clients count against the
// connection cap; Load reports this node's own.
func TestConnectionCapCountsOtherNodes(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxConnections = 3 })
	key := token(t, map[string]any{"role": "anon"})
	ts.dial(t, "2.0.0", key)
	others := Load{Clients: 1}
	ts.srv.SetRemoteLoad(func() Load { return others })
	ts.dial(t, "2.0.0", key) // 2 here + 1 elsewhere = 3
	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/realtime/v1/websocket?vsn=2.0.0&apikey=" + key
	_, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("4th client cluster-wide: %v %v", resp, err)
	}
	if body, _ := io.ReadAll(resp.Body); !strings.Contains(string(body), msgTooManyConnections) {
		t.Fatalf("429 body %s", body)
	}
	if l := ts.srv.Load(); l.Clients != 2 {
		t.Fatalf("Load reports %d clients, want 2", l.Clients)
	}
	ts.srv.SetRemoteLoad(nil)
	ts.dial(t, "2.0.0", key)
}
