package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/openrealtime/realtime/decoder"
)

// The holder's publishing pipeline (docs/cluster.md "Change hand-off"): a
// batch is published to the stream and announced on core NATS at once,
// without waiting for the stream's acknowledgement; positions are confirmed
// to PostgreSQL in order, each once every batch before it was acknowledged.
// So the slot never moves past what the stream holds, and a stream busy
// electing a leader delays confirmations, not deliveries.

// pipelineMax bounds the batches a holder has published and not yet seen
// acknowledged; the change source waits beyond it.
const pipelineMax = 1024

// fastHeader names the header of a batch announced on core NATS: the
// position after which the holder has published every change, up to this
// batch, in the same session (docs/cluster.md "Change hand-off").
const fastHeader = "Rt-Prev"

// sent is one batch published to the stream and waiting for its
// acknowledgements.
type sent struct {
	body        []byte
	first, last uint64
	futures     []jetstream.PubAckFuture
	err         error     // a publish that failed at once
	at          time.Time // when last published: its deadline counts from here
}

// chunkLimit is the most bytes of a batch one message carries.
func (h *Handoff) chunkLimit() int {
	return max(int(h.node.nc.MaxPayload())-512, 4096)
}

// send publishes s's chunks to the stream without waiting, with message
// ids derived from its positions (a re-publish is dropped by the stream).
func (h *Handoff) send(s *sent) {
	limit := h.chunkLimit()
	chunks := (len(s.body) + limit - 1) / limit
	s.futures, s.err, s.at = s.futures[:0], nil, time.Now()
	for i := range chunks {
		m := nats.NewMsg(h.subject)
		m.Data = s.body[i*limit : min((i+1)*limit, len(s.body))]
		m.Header.Set(batchHeader, fmt.Sprintf("%d %d %d %d", s.first, s.last, i, chunks))
		f, err := h.js.PublishMsgAsync(m, jetstream.WithMsgID(fmt.Sprintf("%x-%x.%d.%d", s.first, s.last, i, chunks)))
		if err != nil {
			s.err = fmt.Errorf("cluster: publish changes %d..%d: %w", s.first, s.last, err)
			return
		}
		s.futures = append(s.futures, f)
	}
}

// await waits for s's acknowledgements until handoffAckWait after it was
// published.
func (h *Handoff) await(ctx context.Context, s *sent) error {
	if s.err != nil {
		return s.err
	}
	deadline := time.NewTimer(time.Until(s.at.Add(handoffAckWait)))
	defer deadline.Stop()
	for _, f := range s.futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("cluster: publish changes %d..%d: %w", s.first, s.last, err)
		case <-deadline.C:
			return fmt.Errorf("cluster: publish changes %d..%d: no acknowledgement within %s", s.first, s.last, handoffAckWait)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// sendFast announces a batch that fits one message on core NATS, with the
// position after which the holder published every change up to it (prev),
// to every node's consumer, this node's included. Best effort: a consumer that misses it
// reads the batch from the stream.
func (h *Handoff) sendFast(s *sent, prev uint64) {
	if len(s.body) > h.chunkLimit() {
		return
	}
	m := nats.NewMsg(h.fastSubject)
	m.Data = s.body
	m.Header.Set(batchHeader, fmt.Sprintf("%d %d 0 1", s.first, s.last))
	m.Header.Set(fastHeader, fmt.Sprint(prev))
	if err := h.node.nc.PublishMsg(m); err != nil {
		h.node.log.Debug("cluster: announce a batch", "err", err)
	}
	// The connection has no echo: this node's consumer gets it directly.
	h.offerFast(m)
}

// announce wakes the readers after the stream acknowledged a batch.
func (h *Handoff) announce() {
	h.signal()
	if err := h.node.nc.Publish(h.wakeSubject, nil); err != nil {
		h.node.log.Debug("cluster: announce changes", "err", err)
	}
}

// Pipeline is the publisher of one slot-holding session. Publish (the
// change source's sink) and Confirm run on the source's Run goroutine;
// a pipeline goroutine waits for acknowledgements, publishes again what
// the stream did not acknowledge while keepPublishing allows, and
// confirms positions. Close ends it with the session.
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
	go p.run(ctx)
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
	s := &sent{body: decoder.AppendBatch(nil, batch, announced), first: batch[0].Position, last: batch[len(batch)-1].Position}
	p.h.sendFast(s, p.prev)
	p.h.send(s)
	p.prev = s.last
	p.push(pipeEntry{batch: s})
	return nil
}

// Confirm queues pos to be confirmed once every batch published before it
// was acknowledged. It never blocks.
func (p *Pipeline) Confirm(pos uint64) {
	p.mu.Lock()
	if n := len(p.queue); n > 0 && p.queue[n-1].batch == nil {
		p.queue[n-1].pos = max(p.queue[n-1].pos, pos)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.push(pipeEntry{pos: pos})
}

// Close ends the pipeline: nothing more is confirmed, and Publish fails.
func (p *Pipeline) Close() {
	p.cancel()
	p.mu.Lock()
	p.closed, p.queue, p.queued = true, nil, 0
	p.mu.Unlock()
	notify(p.room)
}

func (p *Pipeline) awaitRoom(ctx context.Context) error {
	for {
		p.mu.Lock()
		err, closed, full := p.failed, p.closed, p.queued >= pipelineMax
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
	}
	p.mu.Unlock()
	notify(p.kick)
}

// head waits for the oldest entry; false when ctx ended.
func (p *Pipeline) head(ctx context.Context) (pipeEntry, bool) {
	for {
		p.mu.Lock()
		if len(p.queue) > 0 {
			e := p.queue[0]
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
		if p.queue[0].batch != nil {
			p.queued--
		}
		p.queue = p.queue[1:]
	}
	p.mu.Unlock()
	notify(p.room)
}

// run confirms positions in order as the batches before them are
// acknowledged, until Close or a failure.
func (p *Pipeline) run(ctx context.Context) {
	for {
		e, ok := p.head(ctx)
		if !ok {
			return
		}
		if e.batch == nil {
			p.confirm(e.pos)
			p.pop()
			continue
		}
		if err := p.h.await(ctx, e.batch); err != nil {
			if ctx.Err() != nil {
				return
			}
			if err := p.recover(ctx, err); err != nil {
				if ctx.Err() == nil {
					p.h.node.log.Warn("cluster: change stream stopped acknowledging; giving the slot up", "stream", p.h.stream, "err", err)
				}
				p.mu.Lock()
				p.failed, p.queue, p.queued = err, nil, 0
				p.mu.Unlock()
				notify(p.room)
				return
			}
		}
		p.pop()
		p.h.announce()
	}
}

// recover publishes every waiting batch again, oldest first, until the
// oldest is acknowledged, for as long as keepPublishing allows; it returns
// an error when it gives up.
func (p *Pipeline) recover(ctx context.Context, err error) error {
	start := time.Now()
	p.h.node.log.Warn("cluster: change stream did not acknowledge; publishing again while it elects a leader",
		"stream", p.h.stream, "err", err)
	for attempt := 2; ; attempt++ {
		if why := p.h.keepPublishing(start); why != "" {
			return fmt.Errorf("%w (%s)", err, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(handoffRepublishPause):
		}
		p.mu.Lock()
		waiting := make([]*sent, 0, p.queued)
		for _, e := range p.queue {
			if e.batch != nil {
				waiting = append(waiting, e.batch)
			}
		}
		p.mu.Unlock()
		for _, s := range waiting {
			p.h.send(s)
		}
		if len(waiting) == 0 {
			return nil // closed meanwhile
		}
		if err = p.h.await(ctx, waiting[0]); err == nil {
			p.h.node.log.Info("cluster: change stream acknowledged again", "stream", p.h.stream,
				"attempts", attempt, "waited", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// notify does a non-blocking send on a capacity-1 channel.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
