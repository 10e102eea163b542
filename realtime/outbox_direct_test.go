package realtime

import (
	"bytes"
	"net"
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
	mu2    sync.Mutex
	out    bytes.Buffer
	room   int   // bytes tryWrite takes per call; -1: all
	busy   bool  // tryWrite reports another write holds the socket
	fail   error // tryWrite's error
	direct int   // frames tryWrite was called for
}

func (l *directFake) tryWrite(f channels.Frame) ([]byte, bool, error) {
	l.mu2.Lock()
	defer l.mu2.Unlock()
	l.direct++
	if l.busy {
		return nil, false, nil
	}
	if l.fail != nil {
		return nil, true, l.fail
	}
	n := len(f.Data)
	if l.room >= 0 && l.room < n {
		n = l.room
	}
	l.out.Write(f.Data[:n])
	if n == len(f.Data) {
		return nil, true, nil
	}
	return append([]byte(nil), f.Data[n:]...), true, nil
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
