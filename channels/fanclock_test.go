package channels

import (
	"testing"
	"time"
)

// laterWriter records which way each frame was queued.
type laterWriter struct {
	recWriter
	now, later int
}

func (w *laterWriter) Enqueue(f Frame) bool      { w.now++; return w.recWriter.Enqueue(f) }
func (w *laterWriter) EnqueueLater(f Frame) bool { w.later++; return w.recWriter.Enqueue(f) }

// A fan-out loop within its budget lets connections write at once; past
// it, every further frame is only queued, and all are counted as sent.
func TestFanClockQueuesOnlyPastItsBudget(t *testing.T) {
	w := &laterWriter{}
	s := &Subscription{ID: 1, Topic: "realtime:a", Writer: w}
	c := newFanClock()
	c.start += int64(time.Hour) // no pause of this goroutine can use the budget up
	for range 40 {
		c.deliver(s, Frame{Data: []byte("x")})
	}
	if w.later != 0 || w.now != 40 {
		t.Fatalf("within the budget: %d direct, %d later; want all 40 direct", w.now, w.later)
	}
	c.start = time.Now().UnixNano() - int64(2*directBudget) // the loop has run past its budget
	for range 40 {
		c.deliver(s, Frame{Data: []byte("x")})
	}
	if w.later < 24 || w.now+w.later != 80 || s.Sent() != 80 {
		t.Fatalf("past the budget: %d direct, %d later, %d sent; want the frames after the next check queued, 80 sent", w.now, w.later, s.Sent())
	}
}
