package realtime

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The events/s limit is shared in proportion to demand: asking 10 while
// the other nodes ask 30 under a limit of 10 gets 2 (of a 2.5 share);
// demand counts the refused ones too; alone, the whole limit.
func TestSecondRateSharesByDemand(t *testing.T) {
	var r secondRate
	now := time.Unix(1000, 0)
	admit := func(n int, others float64) int {
		got := 0
		for range n {
			if r.allow(now, 1, 10, others) {
				got++
			}
		}
		return got
	}
	if got := admit(10, 30); got != 2 {
		t.Fatalf("admitted %d of 10 with 30/s asked elsewhere under 10/s, want 2", got)
	}
	if d := r.demand(now.Add(500 * time.Millisecond)); d != 10 {
		t.Fatalf("demand %v, want 10", d)
	}
	// Half of the previous second still lies in the last second.
	if d := r.demand(now.Add(1500 * time.Millisecond)); d != 5 {
		t.Fatalf("demand half a second into the next second %v, want 5", d)
	}
	if d := r.demand(now.Add(5 * time.Second)); d != 0 {
		t.Fatalf("demand after a quiet while %v, want 0", d)
	}
	now = now.Add(10 * time.Second)
	if got := admit(12, 0); got != 10 {
		t.Fatalf("alone: admitted %d of 12 under 10/s, want 10", got)
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

// A simulated cluster (no wall clock): nodes with steady demand report it
// every second at their own phase, and each shares events/s by the last
// reports. After the first second (cold start: each node alone takes up
// to the whole limit), every second admits between 90 % and 100 % of the
// limit whatever the spread of demand (docs/cluster.md "Cluster-wide
// limits").
func TestSecondRateClusterConverges(t *testing.T) {
	const limit = 100
	phases := []time.Duration{0, 300 * time.Millisecond, 700 * time.Millisecond}
	for _, demand := range [][]float64{{100, 100, 100}, {300, 10, 10}, {1000, 1000, 1000}, {50, 50, 0}, {60, 60, 60}} {
		n := len(demand)
		rates := make([]secondRate, n)
		reported := make([]float64, n)
		acc := make([]float64, n)
		perSec := make([]int, 12)
		t0 := time.Unix(1000, 0)
		const step = time.Millisecond
		for el := time.Duration(0); el < 12*time.Second; el += step {
			now := t0.Add(el)
			for i := range n {
				if el >= phases[i] && (el-phases[i])%time.Second == 0 {
					reported[i] = rates[i].demand(now)
				}
				for acc[i] += demand[i] * step.Seconds(); acc[i] >= 1; acc[i]-- {
					others := 0.0
					for j := range n {
						if j != i {
							others += reported[j]
						}
					}
					if rates[i].allow(now, 1, limit, others) {
						perSec[el/time.Second]++
					}
				}
			}
		}
		total := 0.0
		for _, d := range demand {
			total += d
		}
		want := min(total, limit)
		if perSec[0] > n*limit {
			t.Errorf("demand %v: first second admitted %d", demand, perSec[0])
		}
		for s, got := range perSec[1:] {
			if float64(got) > limit || float64(got) < 0.9*want {
				t.Errorf("demand %v: second %d admitted %d, want %v..%d (per second: %v)", demand, s+1, got, 0.9*want, limit, perSec)
				break
			}
		}
	}
}
