package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openrealtime/realtime/decoder"
)

// txn is one single-row transaction at position pos.
func txn(rel *decoder.Relation, pos uint64) decoder.Change {
	v := fmt.Sprint(pos)
	return decoder.Change{Kind: decoder.Insert, Rel: rel, Position: pos, CommitTime: time.Unix(0, int64(pos)).UTC(),
		New: []decoder.Value{{Text: v, JSON: []byte(v)}}}
}

// collector is a sink recording the positions it is given.
type collector struct {
	mu  sync.Mutex
	pos []uint64
}

func (c *collector) sink(_ context.Context, batch []decoder.Change) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range batch {
		c.pos = append(c.pos, ch.Position)
	}
	return nil
}

func (c *collector) await(t *testing.T, n int) []uint64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		got := append([]uint64(nil), c.pos...)
		c.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Every node's consumer gets every change once, in order: batches
// re-published by another holder (the same or overlapping, with other
// boundaries) and changes at or before After are not delivered again, and
// a batch larger than a message is chunked and put together again.
func TestHandoffExactlyOnceInOrder(t *testing.T) {
	nodes := startNodes(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rel := &decoder.Relation{OID: 1, Schema: "public", Table: "t", Columns: []decoder.Column{{Name: "v", Type: "text", TypeOID: 25}}}
	hs := make([]*Handoff, len(nodes))
	for i, n := range nodes {
		h, err := n.node.Handoff("p1")
		if err != nil {
			t.Fatal(err)
		}
		h.EnsureLoop(ctx, "db1")
		if err := h.Ready(ctx); err != nil && !errors.Is(err, errStreamLeader) {
			t.Fatalf("stream not ready after EnsureLoop: %v", err)
		}
		hs[i] = h
	}
	var cols []*collector
	var wg sync.WaitGroup
	for i, h := range hs {
		c := &collector{}
		cols = append(cols, c)
		after := uint64(0)
		if i == 2 {
			after = 3 // this node started after position 3 was confirmed
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.Consume(ctx, ConsumeConfig{After: after, Decoder: &decoder.BatchDecoder{}, Sink: c.sink})
		}()
	}
	batch := func(from, to uint64) []decoder.Change {
		var b []decoder.Change
		for p := from; p <= to; p++ {
			b = append(b, txn(rel, p))
		}
		return b
	}
	publish := func(h *Handoff, b []decoder.Change) {
		t.Helper()
		if err := h.Publish(ctx, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	publish(hs[0], batch(1, 5))
	publish(hs[0], batch(1, 5)) // the same batch again: dropped by its id
	publish(hs[1], batch(4, 8)) // a new holder re-reads 4 and 5: dropped by position
	publish(hs[1], batch(9, 9))
	big := batch(10, 10)
	big[0].New[0].Text = string(make([]byte, 3<<20)) // over the 1 MB payload limit
	big[0].New[0].JSON = []byte(`"big"`)
	publish(hs[2], big)
	publish(hs[2], batch(11, 12))
	for i, c := range cols {
		want := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
		if i == 2 {
			want = want[3:]
		}
		c.await(t, len(want))
		time.Sleep(200 * time.Millisecond) // anything duplicated would come now
		c.mu.Lock()
		got := append([]uint64(nil), c.pos...)
		c.mu.Unlock()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("node %d got positions %v, want %v", i, got, want)
		}
	}
	if p := hs[0].LastPosition(); p != 12 {
		t.Errorf("LastPosition %d, want 12", p)
	}
	cancel()
	wg.Wait()
}
