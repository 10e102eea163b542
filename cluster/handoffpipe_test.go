package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openrealtime/realtime/decoder"
)

// confirmations records the positions a pipeline confirms.
type confirmations struct {
	mu  sync.Mutex
	pos []uint64
}

func (c *confirmations) add(p uint64) {
	c.mu.Lock()
	c.pos = append(c.pos, p)
	c.mu.Unlock()
}

func (c *confirmations) list() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]uint64(nil), c.pos...)
}

// A pipeline's batches reach every node's consumer while the stream cannot
// take them (here: deleted), through their announcement; nothing is
// confirmed until the stream is back and acknowledged them, and then the
// positions are confirmed in order. A batch whose announcement does not
// continue what a consumer delivered is left to the stream, and nothing is
// delivered twice.
func TestPipelineDeliversBeforeAcknowledgement(t *testing.T) {
	ctx, hs, cols := handoffRig(t, 2, 10)
	rel := &decoder.Relation{OID: 1, Schema: "public", Table: "t", Columns: []decoder.Column{{Name: "v", Type: "text", TypeOID: 25}}}
	batch := func(from, to uint64) []decoder.Change {
		var b []decoder.Change
		for p := from; p <= to; p++ {
			b = append(b, txn(rel, p))
		}
		return b
	}
	conf := &confirmations{}
	p := hs[0].NewPipeline(10, conf.add)
	defer p.Close()
	publish := func(b []decoder.Change) {
		t.Helper()
		if err := p.Publish(ctx, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	publish(batch(11, 12))
	p.Confirm(12)
	for _, c := range cols {
		c.await(t, 2)
	}
	waitFor(t, func() bool { return slices.Equal(conf.list(), []uint64{12}) }, "position 12 confirmed")

	if err := hs[0].js.DeleteStream(ctx, hs[0].stream); err != nil {
		t.Fatal(err)
	}
	publish(batch(13, 14))
	p.Confirm(14)
	publish(batch(15, 15))
	p.Confirm(15)
	for i, c := range cols {
		if got := c.await(t, 5); fmt.Sprint(got) != "[11 12 13 14 15]" {
			t.Fatalf("node %d got %v while the stream was gone, want [11 12 13 14 15]", i, got)
		}
	}
	if got := conf.list(); !slices.Equal(got, []uint64{12}) {
		t.Fatalf("confirmed %v while the stream was gone, want [12]", got)
	}
	if err := hs[0].Ensure(ctx, "db1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return slices.Equal(conf.list(), []uint64{12, 14, 15}) }, "positions 14 and 15 confirmed after the stream is back")

	// A holder whose session starts after what a consumer delivered (its
	// announcements do not continue it) reaches it through the stream.
	q := hs[1].NewPipeline(20, conf.add)
	defer q.Close()
	if err := q.Publish(ctx, batch(21, 22), nil); err != nil {
		t.Fatal(err)
	}
	if err := q.Publish(ctx, batch(16, 16), nil); err != nil { // out of order: never delivered
		t.Fatal(err)
	}
	for i, c := range cols {
		c.await(t, 7)
		time.Sleep(200 * time.Millisecond) // anything duplicated would come now
		c.mu.Lock()
		got := fmt.Sprint(c.pos)
		c.mu.Unlock()
		if got != "[11 12 13 14 15 21 22]" {
			t.Errorf("node %d got %v, want [11 12 13 14 15 21 22]", i, got)
		}
	}
}

// handoffRig starts n nodes with project p1's hand-off each, its stream
// made, and a consumer per node collecting what it delivers after position
// after. The consumers stop at cleanup, before the nodes.
func handoffRig(t *testing.T, n int, after uint64) (context.Context, []*Handoff, []*collector) {
	t.Helper()
	nodes := startNodes(t, n)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	hs := make([]*Handoff, n)
	cols := make([]*collector, n)
	for i, nd := range nodes {
		h, err := nd.node.Handoff("p1")
		if err != nil {
			t.Fatal(err)
		}
		h.EnsureLoop(ctx, "db1")
		hs[i], cols[i] = h, &collector{}
	}
	for i, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.Consume(ctx, ConsumeConfig{After: after, Decoder: &decoder.BatchDecoder{}, Sink: cols[i].sink})
		}()
	}
	return ctx, hs, cols
}

// loneHandoff is a hand-off on a node of its own, for pipeline tests that
// publish no batch (its stream is never made).
func loneHandoff(t *testing.T) *Handoff {
	t.Helper()
	h, err := startNodes(t, 1)[0].node.Handoff("p1")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A position queued while the pipeline confirms the one before it is
// confirmed too: Confirm must not raise the position being confirmed, which
// was then taken off the queue with the newer one lost.
func TestPipelineConfirmWhileConfirming(t *testing.T) {
	entered, release := make(chan uint64), make(chan struct{})
	conf := &confirmations{}
	p := loneHandoff(t).NewPipeline(10, func(pos uint64) {
		conf.add(pos)
		if pos == 12 {
			entered <- pos
			<-release
		}
	})
	defer p.Close()
	p.Confirm(12)
	<-entered // the pipeline is confirming 12
	p.Confirm(14)
	close(release)
	waitFor(t, func() bool { return slices.Equal(conf.list(), []uint64{12, 14}) }, "position 14 confirmed after 12")
}

// Confirm reports a pipeline whose stream stopped acknowledging (the change
// source then ends its session and gives the slot up, even on an idle slot)
// and a closed one, and queues nothing then.
func TestPipelineConfirmReportsFailure(t *testing.T) {
	conf := &confirmations{}
	p := loneHandoff(t).NewPipeline(10, conf.add)
	if err := p.Confirm(11); err != nil {
		t.Fatalf("Confirm of a working pipeline: %v", err)
	}
	waitFor(t, func() bool { return slices.Equal(conf.list(), []uint64{11}) }, "position 11 confirmed")
	failure := errors.New("stream stopped acknowledging")
	p.mu.Lock()
	p.failed = failure // as run sets it after publishBatch failed
	p.mu.Unlock()
	if err := p.Confirm(12); !errors.Is(err, failure) {
		t.Fatalf("Confirm after a failure returned %v, want %v", err, failure)
	}
	p.Close()
	if err := p.Confirm(13); err == nil {
		t.Fatal("Confirm after Close returned nil")
	}
	if got := conf.list(); !slices.Equal(got, []uint64{11}) {
		t.Fatalf("confirmed %v, want [11]", got)
	}
}

// A position the holder confirms past its last change (a keepalive's) is
// announced as covered: a reader that delivered everything before it
// takes the next holder's first batch, which starts there, from its
// announcement, without waiting for the stream (here: deleted).
func TestPipelineAnnouncesCoveredPositions(t *testing.T) {
	ctx, hs, cols := handoffRig(t, 2, 10)
	rel := &decoder.Relation{OID: 1, Schema: "public", Table: "t", Columns: []decoder.Column{{Name: "v", Type: "text", TypeOID: 25}}}
	conf := &confirmations{}
	p := hs[0].NewPipeline(10, conf.add)
	if err := p.Publish(ctx, []decoder.Change{txn(rel, 11), txn(rel, 12)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Confirm(12); err != nil {
		t.Fatal(err)
	}
	for _, c := range cols {
		c.await(t, 2)
	}
	// Both readers' announcement subscriptions have crossed the route by
	// now (a marker sent before would be missed, as at a node's start).
	time.Sleep(500 * time.Millisecond)
	if err := p.Confirm(20); err != nil { // a keepalive past the last change
		t.Fatal(err)
	}
	for i, h := range hs {
		waitFor(t, func() bool { return h.LastPosition() == 20 }, fmt.Sprintf("node %d covered up to 20", i))
	}
	p.Close()
	if err := hs[0].js.DeleteStream(ctx, hs[0].stream); err != nil {
		t.Fatal(err)
	}
	q := hs[1].NewPipeline(20, conf.add) // the next holder starts at the confirmed position
	defer q.Close()
	if err := q.Publish(ctx, []decoder.Change{txn(rel, 21), txn(rel, 22)}, nil); err != nil {
		t.Fatal(err)
	}
	for i, c := range cols {
		if got := c.await(t, 4); fmt.Sprint(got) != "[11 12 21 22]" {
			t.Errorf("node %d got %v, want [11 12 21 22]", i, got)
		}
	}
}
