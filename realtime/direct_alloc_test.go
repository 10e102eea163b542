package realtime

import (
	"io"
	"net"
	"testing"

	"github.com/openrealtime/realtime/channels"
)

// countingDirect is a directLink that takes every frame and allocates
// nothing, so that the outbox's own allocations can be counted.
type countingDirect struct {
	fakeLink
	frames int
}

func (l *countingDirect) tryWrite(frames []channels.Frame) ([]byte, bool, error) {
	l.frames += len(frames)
	return nil, true, nil
}

func (l *countingDirect) writeEncoded([]byte) error { return nil }

// TestDirectWriteAllocatesNothing: a frame written at once, from the
// outbox to write(2), allocates nothing; at 100 000 deliveries a second
// every byte here is garbage the collector takes from the fan-out.
func TestDirectWriteAllocatesNothing(t *testing.T) {
	l := &countingDirect{}
	o, _ := testOutbox(t, l, 1<<20)
	f := channels.Frame{Data: []byte(`[null,null,"realtime:a","postgres_changes",{}]`)}
	allocs := testing.AllocsPerRun(100, func() {
		o.mu.Lock()
		o.wrote = 0 // idle: the frame is written directly, not coalesced
		o.mu.Unlock()
		o.Enqueue(f)
	})
	if l.frames < 100 || allocs != 0 {
		t.Fatalf("outbox: %d frames written directly, %.1f allocations per frame", l.frames, allocs)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		peer, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, peer)
			peer.Close()
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &wsConn{}
	c.setSocket(nc)
	frames := []channels.Frame{f}
	allocs = testing.AllocsPerRun(100, func() {
		if rest, tried, err := c.tryWrite(frames); rest != nil || !tried || err != nil {
			t.Fatalf("tryWrite: rest %d, tried %v, err %v", len(rest), tried, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("socket: %.1f allocations per direct write", allocs)
	}
}
