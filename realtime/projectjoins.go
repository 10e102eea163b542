package realtime

import (
	"sync"
	"sync/atomic"
	"time"
)

// Texts of the project-wide join rate limit (docs/projects.md "Limits").
const (
	reasonTooManyJoins = "ClientJoinRateLimitReached: Too many joins per second"
	msgTooManyJoins    = "Too many joins per second"
)

// Supabase's tenant join counter (docs/projects.md "Limits"): admitted
// joins are counted per joinTick, the last joinTicks counts are averaged,
// and a counter that saw no join for joinIdleReset starts afresh.
const (
	joinTick      = 5 * time.Second
	joinTicks     = 12
	joinIdleReset = 10 * time.Minute
)

// joinRate is a project's join rate limit, Supabase's max_joins_per_second
// (docs/projects.md "Limits"). Admitted joins are counted in joinTick
// periods; when a period ends the mean of the last joinTicks period counts
// is compared with the limit, and until the next period ends every join is
// refused if that mean reached it. Like Supabase, the mean is of period
// counts (joins per 5 s), not divided by the period's length.
//
// The join path costs atomic loads and one atomic add; mu is taken once
// per period, by the join that ends it.
type joinRate struct {
	count   atomic.Int64 // joins admitted in the current period
	tripped atomic.Bool  // the mean reached the limit when the last period ended
	next    atomic.Int64 // unix nanoseconds at which the current period ends; 0: not started

	// remote is the other nodes' mean (joins per period) on a node of a
	// cluster, nil on a single node (docs/cluster.md "Cluster-wide limits").
	remote atomic.Pointer[func() float64]

	mu     sync.Mutex         // guards bucket, n, head; serialises the end of a period
	bucket [joinTicks]float64 // counts of the last n periods, a ring ending at head-1
	n      int                // periods in bucket (at most joinTicks)
	head   int                // next slot of bucket to write
}

// allow admits one join at now under limit (joins per period on average;
// limit <= 0 admits everything) and counts it; a refused join is not
// counted. tripped reports that this call ended a period whose mean
// reached the limit (the caller logs it).
func (r *joinRate) allow(now time.Time, limit int) (ok, tripped bool) {
	if limit <= 0 {
		return true, false
	}
	if now.UnixNano() >= r.next.Load() {
		tripped = r.roll(now, limit)
	}
	if r.tripped.Load() {
		return false, tripped
	}
	r.count.Add(1)
	return true, tripped
}

// blocked reports whether joins are being refused at now: a connection
// attempt then gets 429 (docs/projects.md "Limits").
func (r *joinRate) blocked(now time.Time, limit int) bool {
	if limit <= 0 {
		return false
	}
	if now.UnixNano() >= r.next.Load() {
		r.roll(now, limit)
	}
	return r.tripped.Load()
}

// roll ends every period that ended by now and decides the state of the
// current one. It reports whether the limit was reached just now.
func (r *joinRate) roll(now time.Time, limit int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.next.Load()
	t := now.UnixNano()
	if t < next {
		return false // another join ended the period meanwhile
	}
	if next == 0 || t-next >= int64(joinIdleReset) {
		// First join, or idle long enough that Supabase's counter would
		// have stopped: start afresh.
		r.n, r.head = 0, 0
		r.count.Store(0)
		r.tripped.Store(false)
		r.next.Store(t + int64(joinTick))
		return false
	}
	periods := 1 + (t-next)/int64(joinTick)
	r.push(float64(r.count.Swap(0)))
	for i := int64(1); i < min(periods, joinTicks); i++ {
		r.push(0)
	}
	sum := 0.0
	for i := range r.n {
		sum += r.bucket[i]
	}
	mean := sum / float64(r.n)
	if f := r.remote.Load(); f != nil {
		mean += (*f)()
	}
	was := r.tripped.Load()
	over := mean >= float64(limit)
	r.tripped.Store(over)
	r.next.Store(next + periods*int64(joinTick))
	return over && !was
}

// mean is the mean period count at now, as the period ending now would
// make it, without changing the counter: this node's figure for the other
// nodes of a cluster. 0 before the first join or after an idle reset.
func (r *joinRate) mean(now time.Time) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.next.Load()
	t := now.UnixNano()
	if next == 0 || t-next >= int64(joinIdleReset) {
		return 0
	}
	bucket, n, head := r.bucket, r.n, r.head
	push := func(c float64) {
		bucket[head] = c
		head = (head + 1) % joinTicks
		n = min(n+1, joinTicks)
	}
	if t >= next {
		push(float64(r.count.Load()))
		for i := int64(1); i < min(1+(t-next)/int64(joinTick), joinTicks); i++ {
			push(0)
		}
	}
	if n == 0 {
		return 0
	}
	sum := 0.0
	for i := range n {
		sum += bucket[i]
	}
	return sum / float64(n)
}

// push adds one period's count to the ring.
func (r *joinRate) push(c float64) {
	r.bucket[r.head] = c
	r.head = (r.head + 1) % joinTicks
	r.n = min(r.n+1, joinTicks)
}

// reset forgets every count: a changed limit starts a new counter, as
// Supabase restarts its rate counter when a tenant's limits change.
func (r *joinRate) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n, r.head = 0, 0
	r.count.Store(0)
	r.tripped.Store(false)
	r.next.Store(0)
}
