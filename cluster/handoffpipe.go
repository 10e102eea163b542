package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/openrealtime/realtime/decoder"
)

// The holder's publishing pipeline (docs/cluster.md "Change hand-off"): a
// batch is announced on core NATS at once and published to the stream
// behind the batches before it, without the change source waiting for the
// stream; positions are confirmed to PostgreSQL in order, each once every
// batch before it was acknowledged. So the slot never moves past what the
// stream holds, and a stream busy electing a leader delays confirmations,
// not deliveries.

// pipelineMax and pipelineMaxBytes bound the batches a holder has
// announced and the stream not yet acknowledged; the change source waits
// beyond them.
const (
	pipelineMax      = 4096
	pipelineMaxBytes = 64 << 20
)

// sent is one batch to publish to the stream.
type sent struct {
	body        []byte
	first, last uint64
	prev        uint64 // the fastHeader value, 0 when not known
}

// chunkLimit is the most bytes of a batch one message carries.
func (h *Handoff) chunkLimit() int {
	return max(int(h.node.nc.MaxPayload())-512, 4096)
}

// publishBatch publishes s to the stream in chunks of the payload limit,
// one at a time, each acknowledged before the next: so the stream holds a
// session's batches, and a batch's chunks, in the order they were made,
// which its readers rely on (docs/cluster.md "Change hand-off"). A chunk
// not acknowledged within handoffAckWait is published again, with the same
// message id (the stream keeps one copy), handoffRepublishPause apart, for
// as long as keepPublishing allows; then publishBatch returns the error.
//
// It returns the stream sequences of the batch's messages, first and last,
// or 0, 0 when they are not consecutive (another publisher's message landed
// between its chunks).
func (h *Handoff) publishBatch(ctx context.Context, s *sent) (first, last uint64, err error) {
	limit := h.chunkLimit()
	chunks := (len(s.body) + limit - 1) / limit
	for i := range chunks {
		seq, err := h.publishChunk(ctx, s, s.body[i*limit:min((i+1)*limit, len(s.body))], i, chunks)
		if err != nil {
			return 0, 0, err
		}
		if i == 0 {
			first = seq
		}
		last = seq
	}
	if last-first != uint64(chunks-1) {
		return 0, 0, nil
	}
	return first, last, nil
}

// publishChunk publishes chunk i of n of s until the stream acknowledged
// it (publishBatch).
func (h *Handoff) publishChunk(ctx context.Context, s *sent, part []byte, i, n int) (uint64, error) {
	id := fmt.Sprintf("%x-%x.%d.%d", s.first, s.last, i, n)
	var failing time.Time
	for attempt := 1; ; attempt++ {
		m := nats.NewMsg(h.subject)
		m.Data = part
		m.Header.Set(batchHeader, fmt.Sprintf("%d %d %d %d", s.first, s.last, i, n))
		if s.prev != 0 {
			m.Header.Set(fastHeader, strconv.FormatUint(s.prev, 10))
		}
		actx, cancel := context.WithTimeout(ctx, handoffAckWait)
		ack, err := h.js.PublishMsg(actx, m, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			if attempt > 1 {
				h.node.log.Info("cluster: change stream acknowledged again", "stream", h.stream,
					"attempts", attempt, "waited", time.Since(failing).Round(time.Millisecond))
			}
			return ack.Sequence, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		err = fmt.Errorf("cluster: publish changes %d..%d: %w", s.first, s.last, err)
		if failing.IsZero() {
			failing = time.Now()
			h.node.log.Warn("cluster: change stream did not acknowledge; publishing again while it elects a leader",
				"stream", h.stream, "err", err)
		}
		if why := h.keepPublishing(failing); why != "" {
			return 0, fmt.Errorf("%w (%s)", err, why)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(handoffRepublishPause):
		}
	}
}

// Pipeline is the publisher of one slot-holding session. Publish (the
// change source's sink) announces a batch at once and queues it; Confirm
// queues a position. Both run on the source's Run goroutine. The
// pipeline's goroutine publishes the queued batches to the stream in
// order (publishBatch) and confirms each queued position once the batches
// before it were acknowledged. Close ends it with the session.
type Pipeline struct {
	h       *Handoff
	confirm func(pos uint64)
	cancel  context.CancelFunc
	// prev is the position after which every change of the session was
	// published: the session's start, then its last batch's end. Owned by
	// Publish's goroutine.
	prev uint64

	mu     sync.Mutex // guards queue, failed, closed
	queue  []pipeEntry
	queued int   // batches in queue
	bytes  int   // their encoded size
	failed error // set when the stream stopped acknowledging for good
	closed bool

	kick chan struct{} // capacity 1: the queue grew
	room chan struct{} // capacity 1: the queue shrank or the pipeline ended
}

// pipeEntry is a published batch, or (batch nil) a position to confirm
// once everything before it was acknowledged.
type pipeEntry struct {
	batch *sent
	pos   uint64
}

// errPipelineClosed is returned by Publish after Close.
var errPipelineClosed = errors.New("cluster: replication session ended")

// NewPipeline starts a slot-holding session's publisher; confirm is called
// with each position that is safe to confirm, in order, from the
// pipeline's goroutine. start is the position the session streams from
// (or a later one): every change after it reaches Publish, in order.
func (h *Handoff) NewPipeline(start uint64, confirm func(pos uint64)) *Pipeline {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pipeline{h: h, confirm: confirm, cancel: cancel, prev: start,
		kick: make(chan struct{}, 1), room: make(chan struct{}, 1)}
	go p.run(ctx, start)
	return p
}

// Publish publishes batch to the stream and announces it, waiting only
// while pipelineMax batches are unacknowledged. It returns an error once
// the stream stopped acknowledging (the change source then ends its
// session, which gives the slot up) or after Close. announced is as for
// Handoff.Publish.
func (p *Pipeline) Publish(ctx context.Context, batch []decoder.Change, announced func(*decoder.Relation) bool) error {
	if len(batch) == 0 {
		return nil
	}
	if err := p.awaitRoom(ctx); err != nil {
		return err
	}
	s := &sent{body: decoder.AppendBatch(nil, batch, announced), first: batch[0].Position, last: batch[len(batch)-1].Position, prev: p.prev}
	p.h.sendFast(s)
	p.prev = s.last
	p.push(pipeEntry{batch: s})
	return nil
}

// Confirm queues pos to be confirmed once every batch published before it
// was acknowledged. It never blocks. It returns an error, and queues
// nothing, once the stream stopped acknowledging or after Close: the
// change source then ends its session, which gives the slot up even when
// no further change comes to fail Publish (an idle slot's keepalives keep
// calling Confirm).
func (p *Pipeline) Confirm(pos uint64) error {
	p.mu.Lock()
	switch err := p.failed; {
	case err != nil:
		p.mu.Unlock()
		return err
	case p.closed:
		p.mu.Unlock()
		return errPipelineClosed
	}
	if n := len(p.queue); n > 0 && p.queue[n-1].batch == nil {
		p.queue[n-1].pos = max(p.queue[n-1].pos, pos)
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	p.push(pipeEntry{pos: pos})
	return nil
}

// Close ends the pipeline: nothing more is confirmed, and Publish fails.
func (p *Pipeline) Close() {
	p.cancel()
	p.mu.Lock()
	p.closed, p.queue, p.queued, p.bytes = true, nil, 0, 0
	p.mu.Unlock()
	notify(p.room)
}

func (p *Pipeline) awaitRoom(ctx context.Context) error {
	for {
		p.mu.Lock()
		err, closed, full := p.failed, p.closed, p.queued >= pipelineMax || p.bytes >= pipelineMaxBytes
		p.mu.Unlock()
		switch {
		case err != nil:
			return err
		case closed:
			return errPipelineClosed
		case !full:
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.room:
		}
	}
}

func (p *Pipeline) push(e pipeEntry) {
	p.mu.Lock()
	if p.closed || p.failed != nil {
		p.mu.Unlock()
		return
	}
	p.queue = append(p.queue, e)
	if e.batch != nil {
		p.queued++
		p.bytes += len(e.batch.body)
	}
	p.mu.Unlock()
	notify(p.kick)
}

// head waits for the oldest entry; false when ctx ended. A position to
// confirm is taken off the queue at once, so that Confirm, which raises
// the newest queued position, never raises one being confirmed.
func (p *Pipeline) head(ctx context.Context) (pipeEntry, bool) {
	for {
		p.mu.Lock()
		if len(p.queue) > 0 {
			e := p.queue[0]
			if e.batch == nil {
				p.queue = p.queue[1:]
			}
			p.mu.Unlock()
			return e, true
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return pipeEntry{}, false
		case <-p.kick:
		}
	}
}

func (p *Pipeline) pop() {
	p.mu.Lock()
	if len(p.queue) > 0 {
		if b := p.queue[0].batch; b != nil {
			p.queued--
			p.bytes -= len(b.body)
		}
		p.queue = p.queue[1:]
	}
	p.mu.Unlock()
	notify(p.room)
}

// run publishes the queued batches to the stream one after the other and
// confirms positions in order as the batches before them are
// acknowledged, until Close or a failure.
func (p *Pipeline) run(ctx context.Context, start uint64) {
	covered := start // every change up to here is in an acknowledged batch
	for {
		e, ok := p.head(ctx)
		if !ok {
			return
		}
		if e.batch == nil {
			p.confirm(e.pos) // taken off the queue by head
			if e.pos > covered {
				p.h.sendCovered(covered, e.pos)
				covered = e.pos
			}
			continue
		}
		firstSeq, lastSeq, err := p.h.publishBatch(ctx, e.batch)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.h.node.log.Warn("cluster: change stream stopped acknowledging; giving the slot up", "stream", p.h.stream, "err", err)
			p.mu.Lock()
			p.failed, p.queue, p.queued, p.bytes = err, nil, 0, 0
			p.mu.Unlock()
			notify(p.room)
			return
		}
		p.pop()
		p.h.announce(firstSeq, lastSeq, e.batch.last)
		covered = max(covered, e.batch.last)
	}
}

// notify does a non-blocking send on a capacity-1 channel.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
