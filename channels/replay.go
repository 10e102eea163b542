package channels

import (
	"context"
	"sync"
	"time"

	"github.com/openrealtime/realtime/decoder"
)

// replayWindow keeps the most recent changes, bounded by count, bytes and
// age, so a resumable transport (SSE) can deliver what a client missed
// while it reconnected. It keeps the changes themselves, the row images as
// committed: a replay judges them exactly as the live fan-out did (RLS on
// the image, docs/protocol.md §4.5) and never re-reads a row, so it cannot
// show a row that a later transaction reused the key of.
type replayWindow struct {
	max      int
	maxAge   time.Duration
	maxBytes int

	mu        sync.Mutex // guards the fields below
	entries   []replayEntry
	bytes     int    // sum of the entries' size
	evicted   Cursor // newest cursor evicted from the window
	firstSeen Cursor // first cursor ever added by this process
	seen      bool
	base      uint64 // source position delivered before this process started
	hasBase   bool

	based chan struct{} // closed once base is known
}

type replayEntry struct {
	ch   decoder.Change
	cur  Cursor
	at   time.Time
	size int
}

func newReplayWindow(max int, maxAge time.Duration, maxBytes int) *replayWindow {
	return &replayWindow{max: max, maxAge: maxAge, maxBytes: maxBytes, based: make(chan struct{})}
}

// changeSize estimates the memory a change holds in the window.
func changeSize(ch *decoder.Change) int {
	n := 96
	for _, img := range [][]decoder.Value{ch.New, ch.Old} {
		for i := range img {
			n += 48 + len(img[i].Text) + img[i].JSONLen()
		}
	}
	return n
}

func (w *replayWindow) add(batch []decoder.Change, cursors []Cursor) {
	if w.max <= 0 {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.seen && len(batch) > 0 {
		w.firstSeen, w.seen = cursors[0], true
	}
	for i := range batch {
		size := changeSize(&batch[i])
		w.entries = append(w.entries, replayEntry{ch: batch[i], cur: cursors[i], at: now, size: size})
		w.bytes += size
	}
	drop := 0
	for drop < len(w.entries) && (len(w.entries)-drop > w.max || now.Sub(w.entries[drop].at) > w.maxAge ||
		w.maxBytes > 0 && w.bytes > w.maxBytes) {
		w.bytes -= w.entries[drop].size
		drop++
	}
	if drop > 0 {
		w.evicted = w.entries[drop-1].cur
		// Cut the front without copying the window (a full window drops a
		// few entries per batch): the cleared entries release their
		// changes, and the next growth of the array copies only the live
		// ones, so adding costs amortised constant time.
		clear(w.entries[:drop])
		w.entries = w.entries[drop:]
	}
}

// since returns the changes after `after`, in order, and whether some
// change after it may be missing (evicted, or older than this process's
// window).
func (w *replayWindow) since(after Cursor) (batch []decoder.Change, cursors []Cursor, gap bool) {
	return w.sinceWithin(after, 0)
}

// sinceWithin is since with a budget: when maxBytes > 0 the changes
// returned hold at most maxBytes (as changeSize counts), the newest that
// fit; older ones are left out and reported as a gap, so that one resume's
// work is bounded whatever the window holds.
func (w *replayWindow) sinceWithin(after Cursor, maxBytes int) (batch []decoder.Change, cursors []Cursor, gap bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case after.Less(w.evicted):
		gap = true // evicted changes came after the cursor
	case w.hasBase:
		// Everything after base was streamed by this process and is in the
		// window unless evicted; a cursor before base may have missed
		// changes the previous process delivered.
		gap = after.Pos < w.base
	default:
		gap = !w.seen || after.Less(w.firstSeen)
	}
	first, budget := len(w.entries), maxBytes
	for first > 0 && after.Less(w.entries[first-1].cur) {
		if maxBytes > 0 && budget < w.entries[first-1].size {
			gap = true // older changes past the budget are left out
			break
		}
		budget -= w.entries[first-1].size
		first--
	}
	for _, e := range w.entries[first:] {
		batch = append(batch, e.ch)
		cursors = append(cursors, e.cur)
	}
	return batch, cursors, gap
}

// SetReplayBase records the source position from which this process
// streams (the slot's confirmed position at start). Only the first call
// counts; later reconnects continue the same window.
func (p *PGChanges) SetReplayBase(pos uint64) {
	w := p.replay
	w.mu.Lock()
	if !w.hasBase {
		w.base, w.hasBase = pos, true
		close(w.based)
	}
	w.mu.Unlock()
}

// replayBaseWait bounds how long a resume waits for the change source to
// start streaming when the process has just started.
const replayBaseWait = 15 * time.Second

// Replay returns the frames sub would have received for the changes after
// `after` that are still in the replay window, RLS-checked for sub, and
// whether the window could not cover the whole gap (the client must then
// refetch). It does not queue anything. maxBytes > 0 bounds the changes
// it considers to the newest that fit (the rest is a gap).
//
// A resume that arrives before the source streams for the first time (the
// process has just started) waits for it, up to replayBaseWait: until then
// the window cannot tell what the previous process delivered.
func (p *PGChanges) Replay(ctx context.Context, sub *Subscription, after Cursor, maxBytes int) (frames []Frame, gap bool, err error) {
	t := time.NewTimer(replayBaseWait)
	select {
	case <-p.replay.based:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	batch, cursors, gap := p.replay.sinceWithin(after, maxBytes)
	if len(batch) == 0 {
		return nil, gap, nil
	}
	b := p.newBatch(batch, cursors, sub)
	defer b.release()
	if err := b.run(ctx); err != nil {
		return nil, gap, err
	}
	return b.replayed, gap, nil
}
