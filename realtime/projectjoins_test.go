package realtime

import (
	"sync"
	"testing"
	"time"
)

// The project join counter follows Supabase's: joins are counted per 5 s
// period, the mean of the last 12 period counts is compared with the
// limit when a period ends, and the decision holds until the next one.
func TestJoinRateSupabaseSemantics(t *testing.T) {
	var r joinRate
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	admit := func(now time.Time, n int) int {
		t.Helper()
		got := 0
		for range n {
			if ok, _ := r.allow(now, 10); ok {
				got++
			}
		}
		return got
	}
	// Inside the first period nothing is refused, however many joins.
	if got := admit(at(0), 25); got != 25 {
		t.Fatalf("first period admitted %d of 25", got)
	}
	// The period ends with 25 joins: mean 25 >= 10, refused until the next end.
	if ok, tripped := r.allow(at(joinTick), 10); ok || !tripped {
		t.Fatalf("after a period of 25 joins: ok=%v tripped=%v", ok, tripped)
	}
	if !r.blocked(at(joinTick+time.Second), 10) {
		t.Fatal("connections not blocked while tripped")
	}
	if got := admit(at(2*joinTick-time.Millisecond), 5); got != 0 {
		t.Fatalf("admitted %d while tripped", got)
	}
	// Refused joins were not counted: periods [25, 0], mean 12.5: still over.
	if ok, _ := r.allow(at(2*joinTick), 10); ok {
		t.Fatal("mean 12.5 admitted")
	}
	// [25, 0, 0]: mean 8.3 < 10: admitted again.
	if got := admit(at(3*joinTick), 9); got != 9 {
		t.Fatalf("mean 8.3: admitted %d of 9", got)
	}
	// [25, 0, 0, 9]: mean 8.5; a skipped period counts as 0: two periods
	// later [25, 0, 0, 9, 0, 0] mean 5.7.
	if r.blocked(at(6*joinTick), 10) {
		t.Fatal("blocked at mean 5.7")
	}
	// The window is 12 periods: after 12 quiet periods the 25 is gone.
	r.allow(at(18*joinTick), 10)
	r.mu.Lock()
	n, sum := r.n, 0.0
	for _, c := range r.bucket {
		sum += c
	}
	r.mu.Unlock()
	if n != joinTicks || sum != 0 || r.count.Load() != 1 {
		t.Fatalf("after 12 quiet periods: %d periods summing %v, %d open; want 12 summing 0, 1 open", n, sum, r.count.Load())
	}
	// A limit of 0 admits everything.
	if ok, _ := r.allow(at(19*joinTick), 0); !ok {
		t.Fatal("limit 0 refused")
	}
	// Idle for 10 minutes: the counter starts afresh, its first period unjudged.
	r.reset()
	admit(at(0), 50)
	if got := admit(at(joinTick+joinIdleReset), 50); got != 50 {
		t.Fatalf("after 10 idle minutes admitted %d of 50", got)
	}
}

// Concurrent joins of one project are all counted (race detector: no
// lock on the join path beyond the period end).
func TestJoinRateConcurrent(t *testing.T) {
	var r joinRate
	now := time.Unix(1000, 0)
	r.allow(now, 1000000)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				r.allow(now, 1000000)
			}
		}()
	}
	wg.Wait()
	if got := r.count.Load(); got != 8001 {
		t.Fatalf("counted %d joins, want 8001", got)
	}
	// The period ends with 8001 joins: over a limit of 8000.
	if !r.blocked(now.Add(joinTick), 8000) {
		t.Fatal("8001 joins in a period not over 8000")
	}
}
