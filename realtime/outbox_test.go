package realtime

import (
	"errors"
	"sync"
	"testing"

	"github.com/openrealtime/realtime/channels"
)

// fakeLink records what an outbox writes and finishes with; write can be
// made to fail or to wait for a release.
type fakeLink struct {
	mu       sync.Mutex
	written  [][]byte
	reason   channels.CloseReason
	broken   bool
	finished bool
	fail     error         // returned by write when set
	gate     chan struct{} // write waits on it when set
	entered  chan struct{} // write signals it when set, before waiting
}

func (l *fakeLink) write(frames []channels.Frame) error {
	if l.entered != nil {
		l.entered <- struct{}{}
	}
	if l.gate != nil {
		<-l.gate
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	for _, f := range frames {
		l.written = append(l.written, f.Data)
	}
	return nil
}

func (l *fakeLink) finish(reason channels.CloseReason, broken bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reason, l.broken, l.finished = reason, broken, true
}

// timeoutErr is a net.Error-like deadline miss.
type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }

func testOutbox(t *testing.T, l link, budget int) (*outbox, *Server) {
	t.Helper()
	s := &Server{cfg: Config{MaxQueueBytes: budget}}
	s.cfg.setDefaults()
	s.log = s.cfg.Logger
	return newOutbox(s, 1, l), s
}

func TestOutboxWritesInOrderThenFinishes(t *testing.T) {
	l := &fakeLink{}
	o, _ := testOutbox(t, l, 1<<20)
	for _, s := range []string{"a", "b", "c"} {
		if !o.Enqueue(channels.Frame{Data: []byte(s)}) {
			t.Fatalf("Enqueue(%q) refused", s)
		}
	}
	o.Close(channels.ReasonServerShutdown)
	<-o.done
	if got := len(l.written); got != 3 || string(l.written[0]) != "a" || string(l.written[2]) != "c" {
		t.Fatalf("written %q, want a b c in order", l.written)
	}
	if l.reason != channels.ReasonServerShutdown || l.broken {
		t.Fatalf("finish(%v, broken=%v), want server_shutdown, not broken", l.reason, l.broken)
	}
	if o.Enqueue(channels.Frame{Data: []byte("late")}) {
		t.Fatal("a closed outbox accepted a frame")
	}
}

func TestOutboxOverflowIsTypedSlowConsumer(t *testing.T) {
	l := &fakeLink{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	o, s := testOutbox(t, l, 10)
	o.Enqueue(channels.Frame{Data: []byte("12345")})
	<-l.entered // the writer holds the first frame and waits on the gate
	o.Enqueue(channels.Frame{Data: []byte("12345")})
	if o.Enqueue(channels.Frame{Data: []byte("x")}) {
		t.Fatal("a frame past the byte budget was accepted")
	}
	close(l.gate)
	<-o.done
	if l.reason != channels.ReasonSlowConsumer || l.broken {
		t.Fatalf("finish(%v, broken=%v), want slow_consumer, not broken", l.reason, l.broken)
	}
	if len(l.written) > 1 {
		t.Fatalf("a slow consumer's queue was flushed: %q", l.written)
	}
	if n := s.metrics.slowConsumers.Load(); n != 1 {
		t.Fatalf("slow consumers counted %d, want 1", n)
	}
}

func TestOutboxWriteDeadlineIsTypedAndBreaksTheLink(t *testing.T) {
	l := &fakeLink{fail: timeoutErr{}}
	o, s := testOutbox(t, l, 1<<20)
	o.Enqueue(channels.Frame{Data: []byte("a")})
	<-o.done
	if l.reason != channels.ReasonWriteDeadline || !l.broken {
		t.Fatalf("finish(%v, broken=%v), want write_deadline, broken", l.reason, l.broken)
	}
	if !l.reason.SlowConsumer() || s.metrics.slowConsumers.Load() != 1 {
		t.Fatal("a missed write deadline is not counted as a slow consumer")
	}
}

func TestOutboxOtherWriteErrorMeansClientLeft(t *testing.T) {
	l := &fakeLink{fail: errors.New("broken pipe")}
	o, s := testOutbox(t, l, 1<<20)
	o.Enqueue(channels.Frame{Data: []byte("a")})
	<-o.done
	if l.reason != channels.ReasonClientLeft || !l.broken {
		t.Fatalf("finish(%v, broken=%v), want client_left, broken", l.reason, l.broken)
	}
	if s.metrics.slowConsumers.Load() != 0 {
		t.Fatal("a client that left was counted as a slow consumer")
	}
}

func TestOutboxHoldDefersTheWriter(t *testing.T) {
	l := &fakeLink{}
	o, _ := testOutbox(t, l, 1<<20)
	o.hold()
	o.Enqueue(channels.Frame{Data: []byte("live")})
	l.mu.Lock()
	n := len(l.written)
	l.mu.Unlock()
	if n != 0 {
		t.Fatal("the writer ran during a hold")
	}
	o.link.write([]channels.Frame{{Data: []byte("opening")}})
	o.release()
	o.Close(channels.ReasonClientLeft)
	<-o.done
	if len(l.written) != 2 || string(l.written[0]) != "opening" || string(l.written[1]) != "live" {
		t.Fatalf("written %q, want opening then live", l.written)
	}
}
