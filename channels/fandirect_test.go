package channels

import (
	"context"
	"strconv"
	"testing"

	"github.com/openrealtime/realtime/decoder"
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

// A postgres_changes batch of up to directChanges changes may be written
// at once; a larger one (a backlog) is only queued.
func TestChangesDirectOnlyForSmallBatches(t *testing.T) {
	h := NewHub(HubConfig{})
	auth := newFakeAuth()
	auth.visible = func(*Identity, [][]string) ([]bool, error) {
		return []bool{true, true, true, true, true, true, true, true}, nil
	}
	p := NewPGChanges(PGConfig{Hub: h, Auth: auth})
	s, _ := newSub(h, "realtime:a", user("alice"))
	w := &laterWriter{}
	s.Writer = w
	h.Subscribe(s)
	activate(t, p, s, `{"event":"INSERT","schema":"public","table":"todos"}`)
	var small, large []decoder.Change
	for i := range directChanges + 1 {
		large = append(large, insertTodo(i+1, "alice", "t"))
	}
	small = large[:1]
	if err := p.Process(context.Background(), small); err != nil {
		t.Fatal(err)
	}
	if w.now != 1 || w.later != 0 {
		t.Fatalf("batch of 1: %d direct, %d later; want 1 direct", w.now, w.later)
	}
	if err := p.Process(context.Background(), large); err != nil {
		t.Fatal(err)
	}
	if w.now != 1 || w.later != len(large) {
		t.Fatalf("batch of %d: %d direct, %d later in all; want those %d queued only", len(large), w.now-1, w.later, len(large))
	}
}
