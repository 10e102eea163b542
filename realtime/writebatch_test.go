package realtime

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/internal/uring"
)

// socketConns returns n WebSocket connections' outboxes over real loopback
// TCP sockets, and the client end of each socket.
func socketConns(t *testing.T, n int, cfg Config) (outs []*outbox, conns []*wsConn, peers []net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &Server{cfg: cfg}
	s.cfg.setDefaults()
	s.log = s.cfg.Logger
	for i := range n {
		peer, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		nc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { peer.Close(); nc.Close() })
		c := &wsConn{session: &session{srv: s}}
		c.setSocket(nc)
		outs = append(outs, newOutbox(s, uint64(i+1), c))
		conns = append(conns, c)
		peers = append(peers, peer)
	}
	return outs, conns, peers
}

// wsText is what a peer reads for text frames of payloads.
func wsText(payloads ...string) []byte {
	var b []byte
	for _, p := range payloads {
		b = appendWSFrame(b, 1, []byte(p))
	}
	return b
}

// readExactly reads len(want) bytes from peer and compares them.
func readExactly(t *testing.T, peer net.Conn, want []byte) {
	t.Helper()
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatalf("read %d bytes: %v", len(want), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// waitOutboxIdle waits until o has written everything and released its
// socket.
func waitOutboxIdle(t *testing.T, o *outbox) {
	t.Helper()
	for i := 0; ; i++ {
		o.mu.Lock()
		idle := !o.writing && len(o.q) == 0 && o.rest == nil
		o.mu.Unlock()
		if idle {
			return
		}
		if i > 10000 {
			t.Fatal("outbox never went idle")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWriteBatchWritesEveryConnectionInOrder: a fan-out's writes to more
// connections than one submission holds all go out through the ring, one
// shared encoding per frame, and a second frame for a connection whose
// first is in the batch joins it.
func TestWriteBatchWritesEveryConnectionInOrder(t *testing.T) {
	n := uring.Entries + 44
	outs, _, peers := socketConns(t, n, Config{})
	shared := channels.Frame{Data: []byte(`[null,null,"realtime:t","postgres_changes",{"n":1}]`)}
	var wb channels.WriteBatch
	for i, o := range outs {
		if !o.EnqueueIn(shared, &wb) {
			t.Fatalf("connection %d refused the frame", i)
		}
	}
	b, ok := wb.(*writeBatch)
	if !ok || b.ring == nil {
		t.Fatalf("batch %T: no io_uring ring on %s", wb, runtime.GOOS)
	}
	// The first uring.Entries went out when the batch filled; the rest
	// wait for Flush, behind which a second frame queues.
	if len(b.ents) != n-uring.Entries {
		t.Fatalf("%d writes gathered after the first submission, want %d", len(b.ents), n-uring.Entries)
	}
	b.encode()
	if len(b.enc) != len(wsText(string(shared.Data))) {
		t.Fatalf("%d bytes encoded for %d copies of one frame, want one encoding", len(b.enc), len(b.ents))
	}
	last := outs[n-1]
	if !last.EnqueueIn(channels.Frame{Data: []byte("second")}, &wb) {
		t.Fatal("second frame refused")
	}
	if len(b.ents) != n-uring.Entries || len(b.ents[len(b.ents)-1].frames) != 2 {
		t.Fatal("the second frame did not join its connection's entry")
	}
	wb.Flush()
	for i, peer := range peers {
		if i == n-1 {
			readExactly(t, peer, wsText(string(shared.Data), "second"))
			continue
		}
		readExactly(t, peer, wsText(string(shared.Data)))
	}
	for _, o := range outs {
		waitOutboxIdle(t, o)
		if o.queuedBytes() != 0 {
			t.Fatalf("connection %d: %d bytes still counted as queued", o.id, o.queuedBytes())
		}
	}
}

// TestWriteBatchJoinsAConnectionsFramesInOneSend: frames for connections
// whose earlier frame is still gathered join it, and each connection's
// frames go out in one send, in order.
func TestWriteBatchJoinsAConnectionsFramesInOneSend(t *testing.T) {
	n := 10
	outs, _, peers := socketConns(t, n, Config{})
	var wb channels.WriteBatch
	for change := range 3 {
		f := channels.Frame{Data: fmt.Appendf(nil, "change %d", change)}
		for i, o := range outs {
			if !o.EnqueueIn(f, &wb) {
				t.Fatalf("change %d: connection %d refused the frame", change, i)
			}
		}
	}
	b := wb.(*writeBatch)
	if len(b.ents) != n {
		t.Fatalf("%d entries gathered for %d connections", len(b.ents), n)
	}
	for i := range b.ents {
		if len(b.ents[i].frames) != 3 {
			t.Fatalf("entry %d holds %d frames, want 3", i, len(b.ents[i].frames))
		}
	}
	wb.Flush()
	for _, peer := range peers {
		readExactly(t, peer, wsText("change 0", "change 1", "change 2"))
	}
	for _, o := range outs {
		waitOutboxIdle(t, o)
	}
}

// A frame queued by another producer while the batch holds the socket is
// not overtaken by a later frame of the fan-out.
func TestWriteBatchKeepsOrderWithOtherProducers(t *testing.T) {
	outs, _, peers := socketConns(t, 1, Config{})
	var wb channels.WriteBatch
	outs[0].EnqueueIn(channels.Frame{Data: []byte("first")}, &wb)
	outs[0].Enqueue(channels.Frame{Data: []byte("other")})
	outs[0].EnqueueIn(channels.Frame{Data: []byte("third")}, &wb)
	wb.Flush()
	readExactly(t, peers[0], wsText("first", "other", "third"))
	waitOutboxIdle(t, outs[0])
}

// TestWriteBatchLeavesWhatAFullSocketRefusesToTheWriter: a frame larger
// than the socket takes is partly sent by the ring; the rest is written by
// the connection's writer, whole and before the next frame.
func TestWriteBatchLeavesWhatAFullSocketRefusesToTheWriter(t *testing.T) {
	outs, conns, peers := socketConns(t, 2, Config{})
	conns[0].raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
	})
	big := bytes.Repeat([]byte("b"), 4<<20)
	var wb channels.WriteBatch
	outs[0].EnqueueIn(channels.Frame{Data: big}, &wb)
	outs[1].EnqueueIn(channels.Frame{Data: []byte("small")}, &wb)
	outs[0].EnqueueIn(channels.Frame{Data: []byte("after")}, &wb)
	wb.Flush()
	readExactly(t, peers[1], wsText("small"))
	want := append(appendWSFrame(nil, 1, big), wsText("after")...)
	readExactly(t, peers[0], want)
	waitOutboxIdle(t, outs[0])
}

// TestWriteBatchQueuesForABusySocket: when another write holds the socket
// the frame is not gathered but queued for the connection's writer.
func TestWriteBatchQueuesForABusySocket(t *testing.T) {
	outs, conns, peers := socketConns(t, 1, Config{})
	conns[0].wmu.Lock()
	var wb channels.WriteBatch
	outs[0].EnqueueIn(channels.Frame{Data: []byte("held")}, &wb)
	if b, _ := wb.(*writeBatch); b == nil || len(b.ents) != 0 {
		t.Fatalf("batch %v: a held socket's write was gathered", wb)
	}
	wb.Flush()
	conns[0].wmu.Unlock()
	readExactly(t, peers[0], wsText("held"))
	waitOutboxIdle(t, outs[0])
}

// TestWriteBatchOffWritesDirectly: with io_uring disabled no batch is made
// and each frame is written at once, as before batches.
func TestWriteBatchOffWritesDirectly(t *testing.T) {
	outs, _, peers := socketConns(t, 3, Config{DisableIOUring: true})
	var wb channels.WriteBatch
	for i, o := range outs {
		o.EnqueueIn(channels.Frame{Data: fmt.Appendf(nil, "direct %d", i)}, &wb)
	}
	if wb != nil {
		t.Fatalf("batch %T made with io_uring disabled", wb)
	}
	for i, peer := range peers {
		readExactly(t, peer, wsText(fmt.Sprintf("direct %d", i)))
	}
}

// TestWriteBatchAllocatesNothing: once its pool holds a batch, a fan-out's
// batched writes allocate nothing; at 100 000 deliveries a second every
// byte here is garbage the collector takes from the fan-out.
func TestWriteBatchAllocatesNothing(t *testing.T) {
	outs, _, peers := socketConns(t, 8, Config{})
	for _, peer := range peers {
		go io.Copy(io.Discard, peer)
	}
	f := channels.Frame{Data: []byte(`[null,null,"realtime:a","postgres_changes",{}]`)}
	allocs := testing.AllocsPerRun(100, func() {
		var wb channels.WriteBatch
		for _, o := range outs {
			o.mu.Lock()
			o.wrote = 0 // idle: the frame is written at once, not coalesced
			o.mu.Unlock()
			o.EnqueueIn(f, &wb)
		}
		if wb == nil {
			t.Fatal("no batch")
		}
		wb.Flush()
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per fan-out of %d batched writes", allocs, len(outs))
	}
	allocs = testing.AllocsPerRun(100, func() {
		var wb channels.WriteBatch
		for range 2 { // each connection's second frame joins its first
			for _, o := range outs {
				o.mu.Lock()
				o.wrote = 0
				o.mu.Unlock()
				o.EnqueueIn(f, &wb)
			}
		}
		wb.Flush()
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per gathered fan-out of %d connections × 2 frames", allocs, len(outs))
	}
}
