package cluster

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/openrealtime/realtime/decoder"
)

// natsDownAfter is how long a node's NATS connection may be down before
// its consumers report the change feed down (subscribers get a system
// message; docs/cluster.md "Failure behaviour").
const natsDownAfter = 5 * time.Second

// ConsumeConfig configures Handoff.Consume.
type ConsumeConfig struct {
	// After is the position already delivered before this node started
	// consuming (the slot's confirmed position): older changes are skipped.
	After uint64
	// Decoder decodes batches; its OnRelation sees relation changes.
	Decoder *decoder.BatchDecoder
	// Sink fans a batch out to this node's subscribers. An error makes
	// Consume retry the same batch, with backoff, until it succeeds.
	Sink decoder.Sink
	// OnState, if set, is called with true once the consumer has caught up
	// with the stream, with false when the NATS connection has been down
	// for natsDownAfter or the node is cut off from the others, and with
	// true again when it is back. It is called from the consuming
	// goroutine only.
	OnState func(up bool)
}

// Consume reads the stream in order, from its first message, and passes
// the changes after cfg.After (and after everything it delivered before,
// so a batch re-published by a new slot holder is not delivered twice) to
// cfg.Sink, several stream messages per call when they are waiting. It
// returns when ctx ends.
func (h *Handoff) Consume(ctx context.Context, cfg ConsumeConfig) {
	c := &consumer{h: h, cfg: cfg, hwm: cfg.After}
	h.lastSeen.Store(cfg.After)
	// Another node's new messages are announced on the wake-up subject
	// (this node's own through h.wake directly: the connection has no echo).
	sub, err := h.node.nc.Subscribe(h.wakeSubject, h.onAnnouncement)
	if err != nil {
		h.node.log.Warn("cluster: subscribe to change announcements; polling only", "err", err)
	} else {
		defer sub.Unsubscribe()
	}
	// Batches announced before the stream acknowledged them: delivered at
	// once when they continue what this node delivered (takeFast).
	fsub, err := h.node.nc.Subscribe(h.fastSubject, h.offerFast)
	if err != nil {
		h.node.log.Warn("cluster: subscribe to announced batches; reading the stream only", "err", err)
	} else {
		defer fsub.Unsubscribe()
	}
	var quietUntil time.Time // restarts are logged at debug level until then
	for ctx.Err() == nil {
		if err := c.session(ctx); err != nil && ctx.Err() == nil {
			// While the stream elects a leader its replicas may refuse
			// reads for seconds: one warning, then debug lines.
			if now := time.Now(); now.After(quietUntil) {
				h.node.log.Warn("cluster: change consumer restarts", "stream", h.stream, "err", err)
				quietUntil = now.Add(10 * time.Second)
			} else {
				h.node.log.Debug("cluster: change consumer restarts", "stream", h.stream, "err", err)
			}
			c.checkConnection()
			c.idle(ctx, time.After(200*time.Millisecond))
		}
	}
}

// consumer is the state of one Consume call, owned by its goroutine.
type consumer struct {
	h   *Handoff
	cfg ConsumeConfig
	s   jetstream.Stream // the stream's handle, once fetched
	hwm uint64           // newest position delivered (or skipped as already delivered)
	// next is the stream sequence to read next (0: not started); target
	// the stream's last sequence when this node started reading.
	next, target uint64

	// asms are the batches of several chunks being put together, oldest
	// first (another publisher's messages may land between a batch's
	// chunks: an old holder publishing late).
	asms    []*assembly
	pending []decoder.Change

	caughtUp    bool
	agedChecked time.Time // when skipAged last ran
	up          bool      // the last state reported
	downFrom    time.Time // when the connection was first seen down, or zero
}

// Reading the stream (docs/cluster.md "Change hand-off"): a node reads the
// stream message by message with direct gets, which any replica answers and
// which leave no consumer state on the servers to lose when a node dies or
// the stream's leader moves. The holder announces new messages on the
// wake-up subject; without one, the reader polls, backing off to
// maxPollWait.
const (
	minPollWait = time.Millisecond
	maxPollWait = 500 * time.Millisecond
)

// session reads the stream from c.next until an error or ctx ends.
func (c *consumer) session(ctx context.Context) error {
	h := c.h
	// The stream's handle is kept across sessions: fetching it asks the
	// stream's leader, which is missing while the stream elects one, and
	// direct gets need none (any current replica answers them).
	if c.s == nil {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := h.js.Stream(actx, h.stream)
		cancel()
		if err != nil {
			return err
		}
		c.s = s
	}
	s := c.s
	if c.next == 0 {
		st := s.CachedInfo().State
		c.next, c.target = max(st.FirstSeq, 1), st.LastSeq
	}
	if c.next > c.target {
		c.markCaughtUp()
	}
	wait := minPollWait
	for ctx.Err() == nil {
		m, err := c.get(ctx, s)
		switch {
		case err == nil:
			wait = minPollWait
			c.take(ctx, m)
			c.next = m.Sequence + 1
			if len(c.pending) >= handoffMaxChanges {
				c.flush(ctx)
			}
			if !c.caughtUp && m.Sequence >= c.target {
				c.flush(ctx)
				c.markCaughtUp()
			}
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// Past the end (or not yet on the replica that answered), or
			// aged out of the stream.
			c.flush(ctx)
			c.checkConnection()
			if wait >= maxPollWait/4 && (!c.caughtUp || time.Since(c.agedChecked) >= agedCheckEvery) {
				// Without the stream's leader (an election) the check
				// fails; reading goes on and checks again later.
				c.agedChecked = time.Now()
				if err := c.skipAged(ctx, s); err != nil {
					h.node.log.Debug("cluster: change stream info", "stream", h.stream, "err", err)
				} else {
					c.markCaughtUp()
				}
			}
			wait = c.await(ctx, wait)
		default:
			c.flush(ctx)
			c.checkConnection()
			return err
		}
	}
	c.flush(ctx)
	return nil
}

// agedCheckEvery is how often a caught-up reader checks that the stream
// still holds its next message (skipAged).
const agedCheckEvery = 5 * time.Second

// await waits, past the stream's end, until the next message may be there:
// a wake-up that this node's announced batches do not account for, or the
// poll wait running out. Announced batches are taken meanwhile; the wake-up
// that follows the stream's acknowledgement of one this node delivered
// moves the read position past its messages (skipKnown) without reading
// them. It returns the next poll wait.
func (c *consumer) await(ctx context.Context, wait time.Duration) time.Duration {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return wait
		case <-c.h.wake:
			if !c.skipKnown() {
				return minPollWait
			}
			// Nothing announced is left to read: wait for more.
			wait = maxPollWait
		case m := <-c.h.fast:
			c.takeFast(ctx, m)
		case <-timer.C:
			return min(2*wait, maxPollWait)
		}
	}
}

// skipAged moves c.next to the stream's first message when the messages
// before it are gone (aged out while this node was away): their changes
// are lost to this node's replay window, which is logged.
func (c *consumer) skipAged(ctx context.Context, s jetstream.Stream) error {
	var info *jetstream.StreamInfo
	var err error
	c.meanwhile(ctx, func(ctx context.Context) { info, err = s.Info(ctx) })
	if err != nil {
		return err
	}
	if first := info.State.FirstSeq; c.next < first {
		c.h.node.log.Warn("cluster: change stream messages aged out before this node read them", "stream", c.h.stream, "from", c.next, "to", first-1)
		c.next = first
		c.asms = nil
	}
	return nil
}

// take adds one stream message: a chunk of a batch. A complete batch's
// changes after the high-water mark join pending.
func (c *consumer) take(ctx context.Context, msg *jetstream.RawStreamMsg) {
	bm, err := parseBatchHeader(msg.Header.Get(batchHeader))
	if err != nil {
		c.h.node.drop(dropBadMessage, err, "subject", msg.Subject)
		return
	}
	floor := max(c.hwm, c.pendingLast())
	c.pruneAssemblies(floor)
	if bm.last <= floor {
		// Delivered already: a re-publish after a failover, or changes
		// the slot had confirmed before this node started. Batches being
		// put together are kept: this may be another publisher's message
		// between their chunks.
		return
	}
	if bm.chunk == 0 {
		// The stream holds each session's batches in order, and a session
		// starts at or before what the stream holds, so a batch never
		// starts after what was delivered before it (docs/cluster.md
		// "Change hand-off"): a warning when one seems to, which happens
		// without a gap only when this node missed the holder's marker of
		// a confirmed position (coveredHeader).
		if prev, err := strconv.ParseUint(msg.Header.Get(fastHeader), 10, 64); err == nil && prev > floor {
			c.h.node.log.Warn("cluster: change stream: a batch starts after the newest position this node knows delivered (a gap, unless an announcement was missed)",
				"stream", c.h.stream, "delivered", floor, "batch_after", prev, "batch_last", bm.last, "seq", msg.Sequence)
		}
	}
	body := msg.Data
	if bm.of > 1 {
		if body = c.assemble(bm, msg.Data); body == nil {
			return
		}
	}
	changes, err := c.cfg.Decoder.Decode(body)
	if err != nil {
		c.h.node.drop(dropBadMessage, err, "subject", msg.Subject)
		return
	}
	for _, ch := range changes {
		if ch.Position > floor {
			c.pending = append(c.pending, ch)
		}
	}
}

// assembly is a batch of several chunks being put together.
type assembly struct {
	meta batchMeta // the batch, and the newest chunk added
	data []byte
}

// maxAssemblies bounds the batches put together at once; the oldest is
// given up beyond it.
const maxAssemblies = 8

// assemble adds a chunk of a batch of several and returns the batch's
// body once its last chunk came, else nil. A chunk stored twice is
// ignored; a chunk whose predecessors were never seen (the start of its
// batch aged out) is dropped, and its batch with it.
func (c *consumer) assemble(bm batchMeta, data []byte) []byte {
	i := slices.IndexFunc(c.asms, func(a *assembly) bool {
		return a.meta.first == bm.first && a.meta.last == bm.last && a.meta.of == bm.of
	})
	switch {
	case bm.chunk == 0 && i >= 0:
		return nil // stored twice
	case bm.chunk == 0:
		if len(c.asms) >= maxAssemblies {
			c.asms = slices.Delete(c.asms, 0, 1)
		}
		c.asms = append(c.asms, &assembly{meta: bm, data: append([]byte(nil), data...)})
		i = len(c.asms) - 1
	case i < 0:
		return nil
	case bm.chunk <= c.asms[i].meta.chunk:
		return nil // stored twice
	case bm.chunk == c.asms[i].meta.chunk+1:
		c.asms[i].meta.chunk, c.asms[i].data = bm.chunk, append(c.asms[i].data, data...)
	default:
		c.asms = slices.Delete(c.asms, i, i+1)
		return nil
	}
	a := c.asms[i]
	if a.meta.chunk != a.meta.of-1 {
		return nil
	}
	c.asms = slices.Delete(c.asms, i, i+1)
	return a.data
}

// pruneAssemblies gives up the batches being put together that end at or
// before floor: delivered already.
func (c *consumer) pruneAssemblies(floor uint64) {
	c.asms = slices.DeleteFunc(c.asms, func(a *assembly) bool { return a.meta.last <= floor })
}

// get reads the stream's message c.next, taking announced batches while it
// waits (a replica may take seconds to answer, or not answer, while the
// stream elects a leader; the announced batches go on meanwhile).
func (c *consumer) get(ctx context.Context, s jetstream.Stream) (m *jetstream.RawStreamMsg, err error) {
	c.meanwhile(ctx, func(ctx context.Context) { m, err = s.GetMsg(ctx, c.next) })
	return m, err
}

// meanwhile runs call in another goroutine, with a context of at most 2 s,
// and takes announced batches until it returned. call must not touch the
// consumer's state.
func (c *consumer) meanwhile(ctx context.Context, call func(ctx context.Context)) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		call(cctx)
	}()
	for {
		select {
		case <-done:
			return
		case m := <-c.h.fast:
			c.takeFast(ctx, m)
		}
	}
}

// idle waits until until fires or ctx ends, taking announced batches.
func (c *consumer) idle(ctx context.Context, until <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-until:
			return
		case m := <-c.h.fast:
			c.takeFast(ctx, m)
		}
	}
}

// pendingLast is the position of the newest pending change, or 0.
func (c *consumer) pendingLast() uint64 {
	if len(c.pending) == 0 {
		return 0
	}
	return c.pending[len(c.pending)-1].Position
}

// flush hands pending to the sink, retrying with backoff until it is taken
// or ctx ends.
func (c *consumer) flush(ctx context.Context) {
	if len(c.pending) == 0 {
		return
	}
	batch := c.pending
	c.pending = nil
	wait := 100 * time.Millisecond
	for {
		err := c.cfg.Sink(ctx, batch)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		c.h.node.log.Warn("cluster: change fan-out failed; retrying", "stream", c.h.stream, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
	}
	c.hwm = batch[len(batch)-1].Position
	c.h.lastSeen.Store(c.hwm)
}

func (c *consumer) markCaughtUp() {
	if c.caughtUp {
		return
	}
	c.caughtUp = true
	c.report(true)
}

// checkConnection reports the feed down after natsDownAfter without NATS,
// or once the node is cut off from the others while its stream needs them
// (isolation.go, which waited as long already); and up again when the
// connection is back and the node hears another.
func (c *consumer) checkConnection() {
	if c.h.cutOff() {
		c.report(false)
		return
	}
	if c.h.node.nc.IsConnected() {
		c.downFrom = time.Time{}
		if c.caughtUp {
			c.report(true)
		}
		return
	}
	if c.downFrom.IsZero() {
		c.downFrom = time.Now()
	}
	if time.Since(c.downFrom) >= natsDownAfter {
		c.report(false)
	}
}

func (c *consumer) report(up bool) {
	if c.up == up {
		return
	}
	c.up = up
	if c.cfg.OnState != nil {
		c.cfg.OnState(up)
	}
}
