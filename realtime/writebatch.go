package realtime

import (
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/internal/uring"
)

// batchLink is a directLink whose non-blocking writes a writeBatch can make
// for it: the batch takes the socket, writes the frame's WebSocket encoding
// with many other sockets' in one submission, and hands back the result.
type batchLink interface {
	directLink
	// beginBatched takes the socket for the batch's write and returns its
	// descriptor, valid until endBatched; ok is false when another write
	// holds the socket or it has no descriptor.
	beginBatched() (fd int, ok bool)
	// endBatched settles the write of buf that sent n bytes or failed with
	// werr, and releases the socket; rest and err are as tryWrite's.
	endBatched(buf []byte, n int, werr error) (rest []byte, err error)
}

// writeBatch is the channels.WriteBatch of WebSocket connections: the
// writes at once of one fan-out goroutine, gathered and made through a
// uring.Ring, up to uring.Entries sockets per system call instead of one
// (docs/protocol.md §1, "Batched writes"). Each connection's outbox is
// marked writing from add to its settling, as for a direct write; its
// later frames in the same fan-out join its entry (outbox.batch) while
// that is not sent yet, so they go out in the same send. Identical single
// frames of consecutive entries (a change's envelope to one topic) are
// encoded once.
type writeBatch struct {
	srv  *Server
	ring *uring.Ring // nil: the batch writes one socket at a time

	ents []batchEntry
	fds  []int
	bufs [][]byte
	res  []int32
	enc  []byte // the entries' encodings; bufs point into it
}

// batchEntry is one connection's frames in a writeBatch.
type batchEntry struct {
	o      *outbox
	link   batchLink
	frames []channels.Frame // kept between batches for its array
}

// notCompleted marks a result the ring did not report: the send was not
// made.
const notCompleted = int32(-1 << 31)

// add gathers o's frame f as a new entry. o must be marked writing, f
// counted in its qbytes, o.batch set to b and o.mu not held. A full batch
// is flushed.
func (b *writeBatch) add(o *outbox, f channels.Frame) {
	bl := o.direct.(batchLink)
	fd, ok := bl.beginBatched()
	if !ok {
		// Not o.one: o may be written by others once this settles.
		one := [1]channels.Frame{f}
		o.settleBatched(one[:], len(f.Data), nil, false, nil)
		return
	}
	n := len(b.ents)
	if n < cap(b.ents) {
		b.ents = b.ents[:n+1]
	} else {
		b.ents = append(b.ents, batchEntry{})
	}
	e := &b.ents[n]
	e.o, e.link = o, bl
	e.frames = append(e.frames[:0], f)
	b.fds = append(b.fds, fd)
	if len(b.ents) == uring.Entries {
		b.flush()
	}
}

// join adds f to entry i, whose connection's socket the batch holds.
// The outbox's mu is held and f counted in its qbytes.
func (b *writeBatch) join(i int, f channels.Frame) {
	b.ents[i].frames = append(b.ents[i].frames, f)
}

// encode encodes every entry's frames into b.enc, sharing one encoding
// among consecutive entries of the same single frame.
func (b *writeBatch) encode() {
	b.bufs, b.enc = b.bufs[:0], b.enc[:0]
	var lastData *byte
	var lastLen int
	var lastBin bool
	for i := range b.ents {
		frames := b.ents[i].frames
		if len(frames) == 1 {
			f := frames[0]
			data := unsafe.SliceData(f.Data)
			if i > 0 && lastData != nil && data == lastData && len(f.Data) == lastLen && f.Binary == lastBin {
				b.bufs = append(b.bufs, b.bufs[i-1])
				continue
			}
			lastData, lastLen, lastBin = data, len(f.Data), f.Binary
		} else {
			lastData = nil
		}
		start := len(b.enc)
		for _, f := range frames {
			b.enc = appendFrame(b.enc, f)
		}
		b.bufs = append(b.bufs, b.enc[start:len(b.enc):len(b.enc)])
	}
}

// flush makes the gathered writes, up to uring.Entries per submission,
// and settles each connection.
func (b *writeBatch) flush() {
	if len(b.ents) == 0 {
		return
	}
	b.encode()
	b.res = b.res[:0]
	for range b.ents {
		b.res = append(b.res, notCompleted)
	}
	for lo := 0; lo < len(b.ents) && b.ring != nil; lo += uring.Entries {
		hi := min(lo+uring.Entries, len(b.ents))
		if err := b.ring.Send(b.fds[lo:hi], b.bufs[lo:hi], b.res[lo:hi]); err != nil {
			b.srv.log.Warn("batched writes disabled", "err", err)
			b.ring.Close()
			b.ring = nil
			rings.disable()
		}
	}
	for i := range b.ents {
		e := &b.ents[i]
		n, werr := 0, error(nil)
		switch r := b.res[i]; {
		case r == notCompleted && b.ring == nil:
			// The ring failed before this send, or there is none.
			n, werr = syscall.Write(b.fds[i], b.bufs[i])
		case r == notCompleted:
		case r >= 0:
			n = int(r)
		default:
			werr = syscall.Errno(-r)
		}
		rest, err := e.link.endBatched(b.bufs[i], n, werr)
		size := 0
		for _, f := range e.frames {
			size += len(f.Data)
		}
		e.o.settleBatched(e.frames, size, rest, true, err)
		clear(e.frames)
		e.o, e.link = nil, nil
	}
	clear(b.bufs)
	b.ents, b.fds, b.bufs = b.ents[:0], b.fds[:0], b.bufs[:0]
	b.enc = b.enc[:0]
	if cap(b.enc) > maxPooledFrame {
		b.enc = nil
	}
}

// Flush implements channels.WriteBatch.
func (b *writeBatch) Flush() {
	b.flush()
	rings.put(b)
}

// newWriteBatch returns a batch with a ring, or nil when batched writes
// are off (by configuration, because the kernel refuses io_uring, or while
// maxRings batches are out).
func (s *Server) newWriteBatch() *writeBatch {
	if s.cfg.DisableIOUring {
		return nil
	}
	return rings.get(s)
}

// rings lends write batches, each with its ring, and keeps up to
// maxIdleRings between fan-outs.
var rings ringPool

// ringPool is the process's supply of write batches.
type ringPool struct {
	off atomic.Bool // a ring failed or was refused: none is made again

	mu   sync.Mutex // guards the fields below
	idle []*writeBatch
	live int // rings open, idle or lent
}

// maxRings bounds the rings open at once; a fan-out that finds none writes
// one socket at a time. maxIdleRings bounds those kept between fan-outs.
const (
	maxRings     = 64
	maxIdleRings = 8
)

// get lends a batch for srv, making its ring when none is idle.
func (p *ringPool) get(srv *Server) *writeBatch {
	if p.off.Load() {
		return nil
	}
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		b := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		b.srv = srv
		return b
	}
	if p.live >= maxRings {
		p.mu.Unlock()
		return nil
	}
	p.live++
	p.mu.Unlock()
	r, err := uring.New()
	if err != nil {
		p.mu.Lock()
		p.live--
		p.mu.Unlock()
		if !p.off.Swap(true) {
			srv.log.Warn("io_uring unavailable: every direct write is its own system call", "err", err)
		}
		return nil
	}
	return &writeBatch{srv: srv, ring: r}
}

// put takes back a flushed batch.
func (p *ringPool) put(b *writeBatch) {
	b.srv = nil
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.ring == nil {
		p.live--
		return
	}
	if p.off.Load() || len(p.idle) >= maxIdleRings {
		p.live--
		b.ring.Close()
		return
	}
	p.idle = append(p.idle, b)
}

// disable stops making rings after one failed.
func (p *ringPool) disable() { p.off.Store(true) }
