package realtime

import (
	"runtime"
	"sync"
	"time"
)

// coalescer writes the frames of hot connections: those written to less
// than directIdle ago when a frame arrives with nothing queued. Instead of
// a writer goroutine started per frame and one write(2) each, such a
// connection's frames wait for the coalescer's next tick, and every
// connection that gathered frames meanwhile gets them in one non-blocking
// write (docs/protocol.md §1). Under a flood (thousands of frames per
// second per connection) that divides the syscalls on both ends by the
// frames per tick, and no goroutine is woken per connection. What a socket
// does not take at once goes to the connection's writer goroutine. The
// zero value is ready; it belongs to one Server.
type coalescer struct {
	mu      sync.Mutex // guards pending, running
	pending []*outbox
	running bool // the tick goroutine runs; it exits when a tick finds nothing
}

// coalesceTick is how long a hot connection's frames may wait to share a
// write.
const coalesceTick = time.Millisecond

// A connection that gathers at least floodFrames frames within its first
// tick (a flood: thousands of frames a second) keeps gathering for up to
// floodTicks ticks in all, until it holds floodBytes: a write then carries
// a few milliseconds of its frames, not one, and both ends make that many
// times fewer system calls, leaving the CPU to the connections that are
// not flooded. Connections below that rate never wait more than a tick.
const (
	floodFrames = 3
	floodTicks  = 4
	floodBytes  = 32 << 10
)

// add schedules o's queue for the next tick. o must be marked writing
// (the coalescer owns its socket until the flush).
func (c *coalescer) add(o *outbox) {
	c.mu.Lock()
	c.pending = append(c.pending, o)
	if !c.running {
		c.running = true
		o.srv.wg.Add(1)
		go c.run(&o.srv.wg)
	}
	c.mu.Unlock()
}

// run flushes what is pending once per tick and exits on a tick that finds
// nothing.
// wg is the Server's, which counts it.
func (c *coalescer) run(wg *sync.WaitGroup) {
	defer wg.Done()
	var list []*outbox
	for {
		time.Sleep(coalesceTick)
		c.mu.Lock()
		list, c.pending = c.pending, list[:0]
		if len(list) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		held := flushAll(list)
		clear(list)
		if len(held) > 0 {
			c.mu.Lock()
			c.pending = append(c.pending, held...)
			c.mu.Unlock()
		}
	}
}

// coalescePerWorker is how many connections one goroutine flushes in a
// tick before the list is shared out over more of them: the writes do not
// block, but thousands of them in a row would stretch the tick on a
// machine with cores to spare.
const coalescePerWorker = 256

// flushAll flushes every outbox of list, in parallel over up to GOMAXPROCS
// goroutines when the list is long, and returns those that keep gathering
// (see floodFrames).
func flushAll(list []*outbox) (held []*outbox) {
	workers := min(runtime.GOMAXPROCS(0), (len(list)+coalescePerWorker-1)/coalescePerWorker)
	if workers <= 1 {
		return flushEach(list, nil)
	}
	var wg sync.WaitGroup
	helds := make([][]*outbox, workers)
	for i := range workers {
		part := list[len(list)*i/workers : len(list)*(i+1)/workers]
		wg.Go(func() { helds[i] = flushEach(part, nil) })
	}
	wg.Wait()
	for _, h := range helds {
		held = append(held, h...)
	}
	return held
}

// flushEach flushes the outboxes of list in turn and appends to held those
// that keep gathering.
func flushEach(list, held []*outbox) []*outbox {
	for _, o := range list {
		if !o.flushCoalesced() {
			held = append(held, o)
		}
	}
	return held
}
