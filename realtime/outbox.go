package realtime

import (
	"errors"
	"sync"
	"time"

	"github.com/openrealtime/realtime/channels"
)

// link is the transport under an outbox: the only code that touches the
// socket or the response. The outbox calls it from its writer goroutine
// only, one call at a time.
type link interface {
	// write sends frames in order, under the write deadline. An error means
	// the transport is broken; nothing more is written.
	write(frames []channels.Frame) error
	// finish ends the transport for reason after the last write: a close
	// frame on WebSocket (unless broken is set, when the socket cannot take
	// one), the end of the response on SSE.
	finish(reason channels.CloseReason, broken bool)
}

// directLink is a link that can also write a frame at once, without
// waiting for the socket: the outbox tries it when nothing is queued, so
// an idle connection that gets one frame costs no goroutine start and no
// scheduler wake-up (most deliveries, at low and moderate rates).
type directLink interface {
	link
	// tryWrite writes the frames' encoding as far as the socket takes it
	// now and returns the encoded bytes it did not take (nil when all went
	// out). tried is false when it wrote nothing because another write
	// holds the socket; err means the transport is broken.
	tryWrite(frames []channels.Frame) (rest []byte, tried bool, err error)
	// writeEncoded writes bytes left over by tryWrite, under the write
	// deadline.
	writeEncoded(b []byte) error
}

// outbox is a connection's outgoing queue, shared by every transport. It
// is bounded in bytes and drained by one writer goroutine, started when
// frames are queued and gone when the queue is empty, so an idle
// connection costs no goroutine for writing. Producers (fan-out, replies,
// heartbeats) never block: past the byte budget the connection is closed
// as a slow consumer and the rest of its queue is discarded, because a
// client cannot see a gap in the middle of its stream. A frame for an idle
// connection may instead be written by the producer itself (see
// directLink); either way one writer at a time owns the socket.
type outbox struct {
	srv    *Server // budget, write timeout, metrics, logger and WaitGroup
	id     uint64  // connection id, for logs
	link   link
	direct directLink // link's direct writes, nil when it has none

	mu      sync.Mutex       // guards the fields below
	q       []channels.Frame // frames waiting to be written
	rest    []byte           // encoded bytes a direct write left, written before q
	qbytes  int              // bytes in q and rest plus bytes being written
	writing bool             // the socket is owned: by the writer goroutine or a direct write
	broken  bool             // a write failed: nothing more is written
	wrote   int64            // when the last write ended, unix ns
	held    bool             // the writer may not start yet (see hold)
	closing bool             // no more frames are accepted
	discard bool             // end without writing what is queued
	reason  channels.CloseReason
	done    chan struct{} // closed once link.finish has returned

	one   [1]channels.Frame // the frame of a direct write; used only by the writing owner (writing set)
	ticks int               // under mu: coalescer ticks the queued frames have waited

	// Under mu: the writeBatch that holds the socket (writing set) with
	// this connection's frames in its entry batchIdx, until it settles.
	batch    *writeBatch
	batchIdx int
}

func newOutbox(srv *Server, id uint64, l link) *outbox {
	o := &outbox{srv: srv, id: id, link: l, done: make(chan struct{})}
	o.direct, _ = l.(directLink)
	return o
}

// Enqueue implements channels.Writer: it queues f without blocking and
// reports whether it was accepted. When nothing is queued or being written
// it first tries to write f at once (see directLink); what the socket does
// not take is left to the writer goroutine.
func (o *outbox) Enqueue(f channels.Frame) bool { return o.enqueue(f, true) }

// EnqueueLater implements channels.LaterWriter: Enqueue that leaves the
// writing to the writer goroutine.
func (o *outbox) EnqueueLater(f channels.Frame) bool { return o.enqueue(f, false) }

// EnqueueIn implements channels.BatchWriter: Enqueue whose write at once
// joins the fan-out's batch of writes when this connection can (see
// writeBatch).
func (o *outbox) EnqueueIn(f channels.Frame, wb *channels.WriteBatch) bool {
	if _, ok := o.direct.(batchLink); !ok {
		return o.enqueue(f, true)
	}
	b, ok := (*wb).(*writeBatch)
	if !ok {
		if *wb != nil {
			return o.enqueue(f, true) // another transport's batch
		}
		if b = o.srv.newWriteBatch(); b == nil {
			return o.enqueue(f, true)
		}
		*wb = b
	}
	ok, gather := o.enqueueDirect(f, true, b)
	if gather {
		b.add(o, f)
	}
	return ok
}

// enqueue queues f, writing it at once when direct is set and the
// connection is idle.
func (o *outbox) enqueue(f channels.Frame, direct bool) bool {
	ok, _ := o.enqueueDirect(f, direct, nil)
	return ok
}

// enqueueDirect is enqueue whose write at once, when b is set, joins b:
// gather reports that the socket is now reserved for b and the caller
// must add f to it.
func (o *outbox) enqueueDirect(f channels.Frame, direct bool, b *writeBatch) (ok, gather bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing {
		return false, false
	}
	if o.qbytes+len(f.Data) > o.srv.cfg.MaxQueueBytes {
		o.closeLocked(channels.ReasonSlowConsumer)
		return false, false
	}
	if b != nil && o.batch == b && len(o.q) == 0 {
		// The batch holds this connection's socket for an earlier frame
		// and nothing was queued since: this one goes out in the same
		// write.
		o.qbytes += len(f.Data)
		b.join(o.batchIdx, f)
		return true, false
	}
	idle := direct && o.direct != nil && !o.writing && !o.held && len(o.q) == 0 && o.rest == nil
	if idle {
		if now := time.Now().UnixNano(); now-o.wrote >= directIdle {
			if b != nil {
				o.writing = true
				o.qbytes += len(f.Data)
				o.batch, o.batchIdx = b, len(b.ents)
				return true, true
			}
			o.writeDirectLocked(f, now)
			return true, false
		}
	}
	o.q = append(o.q, f)
	o.qbytes += len(f.Data)
	if idle {
		// Hot: the coalescer writes it with what follows within a tick.
		o.writing = true
		o.srv.coalesce.add(o)
		return true, false
	}
	o.startLocked()
	return true, false
}

// directIdle is how long a connection must have been idle for a frame to
// be written directly. A connection written to more often than that gets
// its frames through the coalescer (coalesce.go), which writes whatever
// piled up within a tick in one syscall: under a flood, one write(2) per
// frame would cost more than the goroutine it saves.
const directIdle = int64(time.Millisecond)

// writeDirectLocked writes f through the direct link with o.mu released
// (writing set, so nothing else writes meanwhile) and hands whatever is
// left, or was queued in the meantime, to the writer goroutine. now is
// the time of the call, unix ns. o.mu must be held.
func (o *outbox) writeDirectLocked(f channels.Frame, now int64) {
	o.writing = true
	o.qbytes += len(f.Data)
	o.mu.Unlock()
	o.one[0] = f
	rest, tried, err := o.direct.tryWrite(o.one[:])
	o.mu.Lock()
	o.afterTryLocked(o.one[:], len(f.Data), now, rest, tried, err)
	o.one[0] = channels.Frame{}
}

// settleBatched settles a writeBatch's write of frames (n bytes), as
// tryWrite's results (rest, tried, err) say. The outbox must be marked
// writing, with the frames' bytes counted in qbytes, and o.mu not held.
func (o *outbox) settleBatched(frames []channels.Frame, n int, rest []byte, tried bool, err error) {
	o.mu.Lock()
	o.batch = nil
	o.afterTryLocked(frames, n, time.Now().UnixNano(), rest, tried, err)
	o.mu.Unlock()
}

// flushCoalesced writes what o gathered since the coalescer took it on,
// in one non-blocking write; the rest, and a close, go to the writer
// goroutine. It returns false, writing nothing, when a flooded o keeps
// gathering for another tick (see floodFrames).
func (o *outbox) flushCoalesced() bool {
	o.mu.Lock()
	if o.closing || o.broken {
		o.ticks = 0
		o.srv.wg.Add(1)
		go o.writeLoop() // it finishes (writing is still set)
		o.mu.Unlock()
		return true
	}
	o.ticks++
	if o.ticks < floodTicks && o.qbytes < floodBytes && (o.ticks > 1 || len(o.q) >= floodFrames) {
		o.mu.Unlock()
		return false
	}
	o.ticks = 0
	batch := o.q
	o.q = nil
	n := 0
	for _, f := range batch {
		n += len(f.Data)
	}
	o.mu.Unlock()
	rest, tried, err := o.direct.tryWrite(batch)
	o.mu.Lock()
	o.afterTryLocked(batch, n, time.Now().UnixNano(), rest, tried, err)
	if o.q == nil && cap(batch) <= maxReusedBatch {
		// Nothing came meanwhile: the next tick's frames reuse the array.
		clear(batch)
		o.q = batch[:0]
	}
	o.mu.Unlock()
	return true
}

// maxReusedBatch bounds the queue array a coalesced connection keeps
// between ticks, so a burst does not pin a large one.
const maxReusedBatch = 64

// afterTryLocked settles a non-blocking write of frames (n bytes, counted
// in qbytes) that ended at now (unix ns): the frames leave qbytes, a
// failure breaks the link, an untried batch goes back ahead of what was
// queued meanwhile, a rest is written first by the writer goroutine, which
// starts when anything is left; otherwise the socket is released. o.mu
// must be held; writing is set.
func (o *outbox) afterTryLocked(frames []channels.Frame, n int, now int64, rest []byte, tried bool, err error) {
	o.wrote = now
	o.qbytes -= n
	switch {
	case err != nil:
		o.broken = true
		o.writeFailedLocked(err)
	case !tried:
		o.q = append(append([]channels.Frame(nil), frames...), o.q...)
		o.qbytes += n
	case rest != nil:
		o.rest = rest
		o.qbytes += len(rest)
	}
	if len(o.q) == 0 && o.rest == nil && !o.closing {
		o.writing = false
		return
	}
	o.srv.wg.Add(1)
	go o.writeLoop()
}

// Close ends the connection for reason once what is queued is written
// (slow consumers excepted: their queue is discarded). It is safe from any
// goroutine and idempotent: the first reason wins.
func (o *outbox) Close(reason channels.CloseReason) {
	o.mu.Lock()
	o.closeLocked(reason)
	o.mu.Unlock()
}

// closeAfter queues f as the last frame and closes for reason.
func (o *outbox) closeAfter(f channels.Frame, reason channels.CloseReason) {
	o.mu.Lock()
	if !o.closing {
		o.q = append(o.q, f)
		o.qbytes += len(f.Data)
	}
	o.closeLocked(reason)
	o.mu.Unlock()
}

// closeLocked marks the outbox closing and makes sure the writer runs to
// finish the transport. o.mu must be held.
func (o *outbox) closeLocked(reason channels.CloseReason) {
	if o.closing {
		return
	}
	o.closing, o.reason = true, reason
	if reason.SlowConsumer() {
		o.discard = true
		o.srv.metrics.slowConsumer()
		o.srv.log.Warn("closing slow consumer", "conn_id", o.id, "reason", reason.String(), "queued_bytes", o.qbytes)
	} else {
		o.srv.log.Debug("closing connection", "conn_id", o.id, "reason", reason.String())
	}
	o.startLocked()
}

// hold keeps the writer from starting until release, while the transport
// writes opening frames through its link directly. Frames queued meanwhile
// wait. Call it before the outbox is shared.
func (o *outbox) hold() {
	o.mu.Lock()
	o.held = true
	o.mu.Unlock()
}

// release ends a hold and starts the writer if anything is waiting.
func (o *outbox) release() {
	o.mu.Lock()
	o.held = false
	if len(o.q) > 0 || o.closing {
		o.startLocked()
	}
	o.mu.Unlock()
}

// startLocked starts the writer unless it runs or is held. o.mu must be
// held.
func (o *outbox) startLocked() {
	if !o.writing && !o.held {
		o.writing = true
		o.srv.wg.Add(1)
		go o.writeLoop()
	}
}

// queuedBytes reports the outgoing backlog.
func (o *outbox) queuedBytes() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.qbytes
}

// closed reports whether the outbox no longer accepts frames.
func (o *outbox) closed() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closing
}

// writeLoop is the connection's only writer. It drains the queue in
// batches and exits when the queue is empty; after a close it finishes
// the transport.
func (o *outbox) writeLoop() {
	defer o.srv.wg.Done()
	var batch []channels.Frame
	for {
		o.mu.Lock()
		if o.discard || o.broken || (len(o.q) == 0 && o.rest == nil && o.closing) {
			reason, broken, rest := o.reason, o.broken, o.rest
			o.q, o.rest, o.qbytes = nil, nil, 0
			o.mu.Unlock()
			if rest != nil && !broken {
				// A discarded queue can leave a frame cut off on the wire:
				// finish it, or the close frame would land inside it.
				if err := o.direct.writeEncoded(rest); err != nil {
					broken = true
				}
			}
			o.link.finish(reason, broken)
			close(o.done)
			return
		}
		if len(o.q) == 0 && o.rest == nil {
			o.writing = false
			o.mu.Unlock()
			return
		}
		rest := o.rest
		o.rest = nil
		batch, o.q = o.q, batch[:0]
		o.mu.Unlock()

		n := len(rest)
		for _, f := range batch {
			n += len(f.Data)
		}
		var err error
		if rest != nil {
			err = o.direct.writeEncoded(rest)
		}
		if err == nil && len(batch) > 0 {
			err = o.link.write(batch)
		}
		clear(batch) // the frames may be large; don't keep them alive
		o.mu.Lock()
		o.wrote = time.Now().UnixNano()
		o.qbytes -= n
		if err != nil {
			o.broken = true
			o.writeFailedLocked(err)
		}
		o.mu.Unlock()
	}
}

// writeFailedLocked records why a write failed: a missed deadline is a
// slow consumer, anything else means the client is gone. o.mu must be held.
func (o *outbox) writeFailedLocked(err error) {
	reason := channels.ReasonClientLeft
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		reason = channels.ReasonWriteDeadline
	}
	if o.closing {
		o.srv.log.Debug("write failed while closing", "conn_id", o.id, "err", err)
		return
	}
	o.closing, o.reason = true, reason
	if reason.SlowConsumer() {
		o.srv.metrics.slowConsumer()
		o.srv.log.Warn("closing slow consumer", "conn_id", o.id, "reason", reason.String())
	} else {
		o.srv.log.Debug("write failed", "conn_id", o.id, "err", err)
	}
}
