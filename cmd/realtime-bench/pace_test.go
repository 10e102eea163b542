package main

import (
	"slices"
	"testing"
	"time"
)

func TestSendersPartitionTheMessages(t *testing.T) {
	// Channels split over senders: together they produce every index
	// below the total exactly once, each sender in increasing order.
	for _, tc := range []struct{ senders, keys int }{{1, 1}, {4, 10}, {3, 3}, {4, 5}} {
		const total = 100
		var all []int64
		for j := range tc.senders {
			seq := &ownedSeq{period: int64(tc.keys), residues: residuesFor(j, tc.senders, tc.keys)}
			prev := int64(-1)
			for {
				m := seq.next()
				if m >= total {
					break
				}
				if m <= prev {
					t.Fatalf("%+v sender %d: %d after %d", tc, j, m, prev)
				}
				if int(m%int64(tc.keys))%tc.senders != j {
					t.Fatalf("%+v sender %d produced %d of another sender's channel", tc, j, m)
				}
				prev = m
				all = append(all, m)
			}
		}
		slices.Sort(all)
		if len(all) != total || all[0] != 0 || all[total-1] != total-1 || len(slices.Compact(all)) != total {
			t.Fatalf("%+v: senders produced %d indexes, not 0..%d once each", tc, len(all), total-1)
		}
	}
}

func TestScheduleDue(t *testing.T) {
	start := time.Unix(100, 0)
	s := schedule{start: start, rate: 4, stop: start.Add(time.Hour)}
	if got := s.due(10).Sub(start); got != 2500*time.Millisecond {
		t.Fatalf("message 10 at 4/s due after %v, want 2.5s", got)
	}
	past := schedule{start: time.Now().Add(-time.Hour), rate: 1, stop: time.Now().Add(-time.Minute)}
	if past.waitFor(0) {
		t.Fatal("waitFor after the stop time returned true")
	}
}
