package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/openrealtime/realtime/decoder"
)

// A batch of several chunks is put together even when other messages land
// between its chunks in the stream: an old holder woken up (SIGCONT)
// publishing its queue late, or a chunk stored twice. Every change is
// delivered once, in order.
func TestHandoffChunksInterleaved(t *testing.T) {
	nodes := startNodes(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rel := &decoder.Relation{OID: 1, Schema: "public", Table: "t", Columns: []decoder.Column{{Name: "v", Type: "text", TypeOID: 25}}}
	h, err := nodes[0].node.Handoff("p1")
	if err != nil {
		t.Fatal(err)
	}
	h.EnsureLoop(ctx, "db1")
	batch := func(from, to uint64) *sent {
		var b []decoder.Change
		for p := from; p <= to; p++ {
			b = append(b, txn(rel, p))
		}
		return &sent{body: decoder.AppendBatch(nil, b, nil), first: from, last: to, prev: from - 1}
	}
	// chunk publishes chunk i of n of s, the body cut in n near-equal parts.
	chunk := func(s *sent, i, n int) {
		t.Helper()
		size := (len(s.body) + n - 1) / n
		part := s.body[i*size : min((i+1)*size, len(s.body))]
		if _, err := h.publishChunk(ctx, s, part, i, n); err != nil {
			t.Fatal(err)
		}
	}

	b1, old, m2, late, m3 := batch(1, 5), batch(2, 4), batch(6, 8), batch(6, 7), batch(9, 11)
	chunk(b1, 0, 1)
	chunk(m2, 0, 2)
	chunk(old, 0, 1) // the old holder's batch, delivered already
	chunk(late, 0, 2)
	chunk(m2, 1, 2)
	chunk(late, 1, 2)
	// A three-chunk batch whose middle chunk the stream stored twice.
	chunk(m3, 0, 3)
	chunk(m3, 1, 3)
	republish(t, ctx, h, m3, 1, 3)
	chunk(m3, 2, 3)
	chunk(batch(12, 12), 0, 1)

	c := &collector{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.Consume(ctx, ConsumeConfig{Decoder: &decoder.BatchDecoder{}, Sink: c.sink})
	}()
	want := "[1 2 3 4 5 6 7 8 9 10 11 12]"
	c.await(t, 12)
	time.Sleep(200 * time.Millisecond) // anything duplicated would come now
	c.mu.Lock()
	got := fmt.Sprint(c.pos)
	c.mu.Unlock()
	if got != want {
		t.Errorf("got positions %s, want %s", got, want)
	}
	cancel()
	wg.Wait()
}

// republish stores chunk i of n of s again under another message id, as a
// stream that lost its de-duplication state would.
func republish(t *testing.T, ctx context.Context, h *Handoff, s *sent, i, n int) {
	t.Helper()
	size := (len(s.body) + n - 1) / n
	msg := nats.NewMsg(h.subject)
	msg.Data = s.body[i*size : min((i+1)*size, len(s.body))]
	msg.Header.Set(batchHeader, fmt.Sprintf("%d %d %d %d", s.first, s.last, i, n))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := h.js.PublishMsg(pctx, msg); err != nil {
		t.Fatal(err)
	}
}
