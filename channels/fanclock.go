package channels

import "time"

// directBudget is how long one fan-out loop lets connections write frames
// at once (see LaterWriter). Past it the loop only queues: a fan-out to a
// few hundred idle connections is written directly, the quickest path at
// low load, while a large or busy one hands the rest to the connections'
// writers, which run in parallel and batch frames under load.
const directBudget = 2 * time.Millisecond

// fanClock times one fan-out loop; it belongs to that loop's goroutine.
type fanClock struct {
	start int64 // unix ns
	n     int   // deliveries so far
	late  bool  // past directBudget: queue only
}

func newFanClock() fanClock { return fanClock{start: time.Now().UnixNano()} }

// maxDirectTopic is the largest topic whose broadcasts and presence diffs
// may be written directly. A broadcast to a bigger topic is a sustained
// load of its own (every member, every message), where the writers'
// parallelism and batching beat direct writes: measured at 5 000
// subscribers, 300 000 deliveries/s (docs/benchmarks.md).
const maxDirectTopic = 256

// topicFanClock is the clock of a fan-out to a topic of n subscribers.
func topicFanClock(n int) fanClock {
	c := newFanClock()
	c.late = n > maxDirectTopic
	return c
}

// deliver delivers f to s, directly while within the budget.
func (c *fanClock) deliver(s *Subscription, f Frame) bool {
	if !c.late {
		c.n++
		if c.n&15 == 0 && time.Now().UnixNano()-c.start > int64(directBudget) {
			c.late = true
		}
	}
	if c.late {
		if lw, ok := s.Writer.(LaterWriter); ok {
			return s.count(lw.EnqueueLater(f))
		}
	}
	return s.deliver(f)
}
