package channels

import (
	"strconv"
	"testing"
)

// laterWriter records which way each frame was queued.
type laterWriter struct {
	recWriter
	now, later int
}

func (w *laterWriter) Enqueue(f Frame) bool      { w.now++; return w.recWriter.Enqueue(f) }
func (w *laterWriter) EnqueueLater(f Frame) bool { w.later++; return w.recWriter.Enqueue(f) }

// Broadcasts to a small topic may be written at once; to a topic over
// maxDirectTopic they are only queued. Both are counted as sent.
func TestBroadcastDirectOnlyToSmallTopics(t *testing.T) {
	for _, n := range []int{3, maxDirectTopic + 1} {
		h := NewHub(HubConfig{})
		topic := "realtime:room" + strconv.Itoa(n)
		var ws []*laterWriter
		var subs []*Subscription
		for range n {
			s, _ := newSub(h, topic, nil)
			w := &laterWriter{}
			s.Writer = w
			h.Subscribe(s)
			ws, subs = append(ws, w), append(subs, s)
		}
		h.BroadcastTo(topic, false, &Broadcast{Event: "e", Payload: []byte(`{}`)})
		for i, w := range ws {
			wantNow, wantLater := 1, 0
			if n > maxDirectTopic {
				wantNow, wantLater = 0, 1
			}
			if w.now != wantNow || w.later != wantLater || subs[i].Sent() != 1 {
				t.Fatalf("topic of %d: subscriber %d got %d direct, %d later, %d sent; want %d, %d, 1", n, i, w.now, w.later, subs[i].Sent(), wantNow, wantLater)
			}
		}
	}
}
