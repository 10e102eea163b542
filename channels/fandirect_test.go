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
	w := &laterWriter{}
	p, _ := aliceOnTodos(t, w)
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

// batchRec is a BatchWriter that counts its frames and the batches
// flushed.
type batchRec struct {
	recWriter
	in      int
	flushed *int
}

// countBatch is a WriteBatch that counts its flushes.
type countBatch struct{ flushed *int }

func (b countBatch) Flush() { *b.flushed++ }

func (w *batchRec) EnqueueIn(f Frame, wb *WriteBatch) bool {
	if *wb == nil {
		*wb = countBatch{w.flushed}
	}
	w.in++
	return w.recWriter.Enqueue(f)
}

// A postgres_changes batch of up to directChanges changes hands its frames
// to the connections' write batch and flushes it once; a larger one only
// queues them.
func TestChangesGatherInAWriteBatch(t *testing.T) {
	flushed := 0
	w := &batchRec{flushed: &flushed}
	p, s := aliceOnTodos(t, w)
	if err := p.Process(context.Background(), []decoder.Change{insertTodo(1, "alice", "t"), insertTodo(2, "alice", "t")}); err != nil {
		t.Fatal(err)
	}
	if w.in != 2 || flushed != 1 {
		t.Fatalf("batch of 2: %d frames in the write batch, %d flushes; want 2, 1", w.in, flushed)
	}
	var large []decoder.Change
	for i := range directChanges + 1 {
		large = append(large, insertTodo(i+3, "alice", "t"))
	}
	if err := p.Process(context.Background(), large); err != nil {
		t.Fatal(err)
	}
	if w.in != 2 || flushed != 1 || s.Sent() != int64(2+len(large)) {
		t.Fatalf("batch of %d: %d frames in write batches, %d flushes, %d sent; want 2, 1, %d", len(large), w.in, flushed, s.Sent(), 2+len(large))
	}
}

// allVisible is a fakeAuth visibility check that lets every row through.
func allVisible(_ *Identity, rows [][]string) ([]bool, error) {
	out := make([]bool, len(rows))
	for i := range out {
		out[i] = true
	}
	return out, nil
}

// aliceOnTodos returns a pipeline whose every row is visible and alice's
// subscription to INSERTs on public.todos, written to w.
func aliceOnTodos(t *testing.T, w Writer) (*PGChanges, *Subscription) {
	t.Helper()
	h := NewHub(HubConfig{})
	auth := newFakeAuth()
	auth.visible = allVisible
	p := NewPGChanges(PGConfig{Hub: h, Auth: auth})
	s, _ := newSub(h, "realtime:a", user("alice"))
	s.Writer = w
	h.Subscribe(s)
	activate(t, p, s, `{"event":"INSERT","schema":"public","table":"todos"}`)
	return p, s
}
