package realtime

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openrealtime/realtime/channels"
)

// directFake is a directLink over a byte stream: tryWrite takes at most
// room bytes of each frame (0: the socket is full) or reports the socket
// busy; everything written, directly or by the writer, lands in out.
type directFake struct {
	fakeLink
	mu2     sync.Mutex
	out     bytes.Buffer
	room    int   // bytes tryWrite takes per call; -1: all
	busy    bool  // tryWrite reports another write holds the socket
	fail    error // tryWrite's error
	direct  int   // tryWrite calls
	batches []int // frames per tryWrite call
}

func (l *directFake) tryWrite(frames []channels.Frame) ([]byte, bool, error) {
	l.mu2.Lock()
	defer l.mu2.Unlock()
	l.direct++
	l.batches = append(l.batches, len(frames))
	if l.busy {
		return nil, false, nil
	}
	if l.fail != nil {
		return nil, true, l.fail
	}
	var data []byte
	for _, f := range frames {
		data = append(data, f.Data...)
	}
	n := len(data)
	if l.room >= 0 && l.room < n {
		n = l.room
	}
	l.out.Write(data[:n])
	if n == len(data) {
		return nil, true, nil
	}
	return append([]byte(nil), data[n:]...), true, nil
}

func (l *directFake) writeEncoded(b []byte) error {
	l.mu2.Lock()
	defer l.mu2.Unlock()
	l.out.Write(b)
	return nil
}

func (l *directFake) write(frames []channels.Frame) error {
	l.mu2.Lock()
	defer l.mu2.Unlock()
	for _, f := range frames {
		l.out.Write(f.Data)
	}
	return nil
}

func (l *directFake) bytes() string {
	l.mu2.Lock()
	defer l.mu2.Unlock()
	return l.out.String()
}

// enqueueIdle queues data after the connection has been idle long enough
// for a direct write.
func enqueueIdle(t *testing.T, o *outbox, data string) {
	t.Helper()
	time.Sleep(time.Duration(directIdle) + time.Millisecond)
	if !o.Enqueue(channels.Frame{Data: []byte(data)}) {
		t.Fatalf("Enqueue(%q) refused", data)
	}
}

// waitIdle waits until the outbox has nothing queued or being written.
func waitIdle(t *testing.T, o *outbox) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		o.mu.Lock()
		idle := !o.writing && len(o.q) == 0 && o.rest == nil
		o.mu.Unlock()
		if idle {
			return
		}
	}
	t.Fatal("outbox never went idle")
}

func TestOutboxDirectWriteOfAnIdleConnection(t *testing.T) {
	l := &directFake{room: -1}
	o, _ := testOutbox(t, l, 1<<20)
	enqueueIdle(t, o, "one")
	o.mu.Lock()
	writing := o.writing
	o.mu.Unlock()
	if l.direct != 1 || writing || l.bytes() != "one" {
		t.Fatalf("direct calls %d, writing %v, out %q: want the frame written at once with no writer left", l.direct, writing, l.bytes())
	}
	// A burst right after a write goes through the writer, in order.
	for _, s := range []string{"-a", "-b", "-c"} {
		o.Enqueue(channels.Frame{Data: []byte(s)})
	}
	waitIdle(t, o)
	if got := l.bytes(); got != "one-a-b-c" {
		t.Fatalf("out %q, want one-a-b-c", got)
	}
}

func TestOutboxDirectWriteLeavesTheRestToTheWriter(t *testing.T) {
	l := &directFake{room: 2}
	o, _ := testOutbox(t, l, 1<<20)
	enqueueIdle(t, o, "abcdef")
	o.Enqueue(channels.Frame{Data: []byte("gh")})
	waitIdle(t, o)
	if got := l.bytes(); got != "abcdefgh" {
		t.Fatalf("out %q, want abcdefgh: the rest of a partial direct write comes before later frames", got)
	}
	if o.queuedBytes() != 0 {
		t.Fatalf("queued bytes %d after draining, want 0", o.queuedBytes())
	}
}

func TestOutboxDirectWriteOnABusySocketQueues(t *testing.T) {
	l := &directFake{room: -1, busy: true}
	o, _ := testOutbox(t, l, 1<<20)
	enqueueIdle(t, o, "x")
	waitIdle(t, o)
	if got := l.bytes(); got != "x" {
		t.Fatalf("out %q, want x written by the writer", got)
	}
}

func TestOutboxDirectWriteErrorBreaksTheLink(t *testing.T) {
	l := &directFake{room: -1, fail: net.ErrClosed}
	o, _ := testOutbox(t, l, 1<<20)
	enqueueIdle(t, o, "x")
	select {
	case <-o.done:
	case <-time.After(5 * time.Second):
		t.Fatal("a failed direct write did not finish the outbox")
	}
	if !l.broken || l.reason != channels.ReasonClientLeft {
		t.Fatalf("finish(%v, broken=%v), want client_left, broken", l.reason, l.broken)
	}
	if o.Enqueue(channels.Frame{Data: []byte("y")}) {
		t.Fatal("a broken outbox accepted a frame")
	}
}

// hotOutbox returns an outbox whose connection was just written to, and
// stands in for the coalescer's tick goroutine, so that the test decides
// when ticks come.
func hotOutbox(t *testing.T) (*outbox, *directFake, *coalescer) {
	t.Helper()
	l := &directFake{room: -1}
	o, srv := testOutbox(t, l, 1<<20)
	enqueueIdle(t, o, "one")
	c := &srv.coalesce
	c.mu.Lock()
	c.running = true
	c.mu.Unlock()
	return o, l, c
}

// enqueueAll queues each string as a frame.
func enqueueAll(t *testing.T, o *outbox, frames ...string) {
	t.Helper()
	for _, s := range frames {
		if !o.Enqueue(channels.Frame{Data: []byte(s)}) {
			t.Fatalf("Enqueue(%q) refused", s)
		}
	}
}

// takePending empties c's pending list and checks that it held o once.
func takePending(t *testing.T, c *coalescer, o *outbox) {
	t.Helper()
	c.mu.Lock()
	pending := append([]*outbox(nil), c.pending...)
	c.pending = nil
	c.mu.Unlock()
	if len(pending) != 1 || pending[0] != o {
		t.Fatalf("pending %d outboxes, want this one once: a hot connection waits for the tick", len(pending))
	}
}

// checkWrites checks what reached the socket and in how many frames per
// write.
func checkWrites(t *testing.T, l *directFake, out string, batches []int) {
	t.Helper()
	if got := l.bytes(); got != out {
		t.Fatalf("out %q, want %q", got, out)
	}
	l.mu2.Lock()
	got := append([]int(nil), l.batches...)
	l.mu2.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(batches) {
		t.Fatalf("tryWrite batches %v, want %v", got, batches)
	}
}

func TestOutboxHotConnectionBurstSharesOneWrite(t *testing.T) {
	o, l, c := hotOutbox(t)
	enqueueAll(t, o, "-a", "-b")
	takePending(t, c, o)
	if !o.flushCoalesced() {
		t.Fatalf("%d frames in a tick were held: only a flood (%d) waits longer", 2, floodFrames)
	}
	waitIdle(t, o)
	checkWrites(t, l, "one-a-b", []int{1, 2})
}

func TestOutboxFloodedConnectionGathersSeveralTicks(t *testing.T) {
	o, l, c := hotOutbox(t)
	enqueueAll(t, o, "-a", "-b", "-c")
	takePending(t, c, o)
	for tick := 1; tick < floodTicks; tick++ {
		if o.flushCoalesced() {
			t.Fatalf("a flooded connection was written at tick %d of %d", tick, floodTicks)
		}
		enqueueAll(t, o, fmt.Sprintf("-%d", tick))
	}
	if !o.flushCoalesced() {
		t.Fatalf("a flooded connection still held after %d ticks", floodTicks)
	}
	waitIdle(t, o)
	checkWrites(t, l, "one-a-b-c-1-2-3", []int{1, 3 + floodTicks - 1})

	// Past floodBytes it is written at the next tick.
	o, l, c = hotOutbox(t)
	enqueueAll(t, o, "-a", "-b", strings.Repeat("x", floodBytes))
	takePending(t, c, o)
	if !o.flushCoalesced() {
		t.Fatalf("a connection holding %d bytes was held", floodBytes)
	}
	waitIdle(t, o)
	checkWrites(t, l, "one-a-b"+strings.Repeat("x", floodBytes), []int{1, 3})
}

func TestOutboxCloseWhileCoalescedWritesThenFinishes(t *testing.T) {
	l := &directFake{room: -1}
	o, _ := testOutbox(t, l, 1<<20)
	enqueueIdle(t, o, "one")
	o.Enqueue(channels.Frame{Data: []byte("-two")})
	o.Close(channels.ReasonServerShutdown)
	select {
	case <-o.done:
	case <-time.After(5 * time.Second):
		t.Fatal("closing a coalesced connection never finished")
	}
	if got := l.bytes(); got != "one-two" || l.reason != channels.ReasonServerShutdown {
		t.Fatalf("out %q reason %v, want one-two then server_shutdown", got, l.reason)
	}
}

func TestCoalescerFlushesLongListsCompletely(t *testing.T) {
	// More connections than one worker takes, so the list is shared out.
	n := 3*coalescePerWorker + 7
	links := make([]*directFake, n)
	list := make([]*outbox, n)
	for i := range list {
		links[i] = &directFake{room: -1}
		list[i], _ = testOutbox(t, links[i], 1<<20)
		o := list[i]
		o.mu.Lock()
		o.q = append(o.q, channels.Frame{Data: []byte("a")}, channels.Frame{Data: []byte("b")})
		o.qbytes += 2
		o.writing = true // as the coalescer's add leaves it
		o.mu.Unlock()
	}
	flushAll(list)
	for i, o := range list {
		waitIdle(t, o)
		if got := links[i].bytes(); got != "ab" {
			t.Fatalf("connection %d wrote %q, want ab", i, got)
		}
	}
}

func TestOutboxSlowConsumerCloseFinishesACutOffFrame(t *testing.T) {
	l := &directFake{room: -1}
	o, _ := testOutbox(t, l, 1<<20)
	// A partial non-blocking write left the end of a frame ("cdef") for
	// the writer, and a frame queued after it is over the budget: the
	// queue is discarded, but the cut-off frame must be completed before
	// the close frame, or the client would read the close inside it.
	o.mu.Lock()
	o.rest = []byte("cdef")
	o.qbytes = 4
	o.q = append(o.q, channels.Frame{Data: []byte("later")})
	o.qbytes += 5
	o.closeLocked(channels.ReasonSlowConsumer)
	o.mu.Unlock()
	select {
	case <-o.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow consumer was never finished")
	}
	if got := l.bytes(); got != "cdef" {
		t.Fatalf("wire %q before the close, want the cut-off frame's end only (cdef)", got)
	}
	if l.reason != channels.ReasonSlowConsumer || l.broken {
		t.Fatalf("finish(%v, broken=%v), want slow consumer with a close frame", l.reason, l.broken)
	}
}
