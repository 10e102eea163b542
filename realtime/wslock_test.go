package realtime

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// pipeLockedConn returns a lockedConn over one end of a pipe, its wsConn,
// and the pipe's other end (the client side).
func pipeLockedConn(t *testing.T) (*lockedConn, *wsConn, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	w := &wsConn{nc: a}
	return &lockedConn{Conn: a, w: w}, w, b
}

func TestLockedConnWritesWaitForTheWriteMutex(t *testing.T) {
	lc, w, b := pipeLockedConn(t)
	w.wmu.Lock()
	wrote := make(chan error, 1)
	go func() {
		_, err := lc.Write([]byte("x"))
		wrote <- err
	}()
	b.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 1)
	if n, err := b.Read(buf); n != 0 || err == nil {
		t.Fatalf("read %q while the write mutex was held, want nothing", buf[:n])
	}
	w.wmu.Unlock()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := b.Read(buf); n != 1 || buf[0] != 'x' || err != nil {
		t.Fatalf("read %q, %v after the mutex was released, want x", buf[:n], err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

// A library frame (a pong) that comes between a cut-off frame of ours and
// the writer's write of its end goes after that end, and the writer then
// does not write it again.
func TestLockedConnFinishesACutOffFrameFirst(t *testing.T) {
	lc, w, b := pipeLockedConn(t)
	w.cut = []byte("END")
	got := make(chan string, 1)
	go func() {
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		all, _ := io.ReadAll(b)
		got <- string(all)
	}()
	if _, err := lc.Write([]byte("PONG")); err != nil {
		t.Fatal(err)
	}
	if err := w.writeEncoded([]byte("END")); err != nil {
		t.Fatal(err)
	}
	lc.Conn.Close()
	if s := <-got; s != "ENDPONG" {
		t.Fatalf("wire %q, want ENDPONG: the cut-off frame's end first, once", s)
	}
}

// The close frame the WebSocket library writes by itself (1009 after an
// oversized message) waits for the connection's write mutex, so it can
// never land inside a frame of ours.
func TestLibraryCloseFrameTakesTheWriteMutex(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxFrameBytes = 1 << 10 })
	cl := ts.dial(t, "2.0.0", token(t, map[string]any{"role": "anon"}))
	var wc *wsConn
	for deadline := time.Now().Add(5 * time.Second); wc == nil && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		ts.srv.mu.Lock()
		for _, ss := range ts.srv.sessions {
			wc, _ = ss.t.(*wsConn)
		}
		ts.srv.mu.Unlock()
	}
	if wc == nil {
		t.Fatal("no WebSocket session on the server")
	}
	if lc, ok := wc.ws.NetConn().(*lockedConn); !ok || lc.w != wc {
		t.Fatalf("the library writes through %T, want a lockedConn on the connection's write mutex", wc.ws.NetConn())
	}
	wc.wmu.Lock()
	if err := cl.ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("a"), 2<<10)); err != nil {
		wc.wmu.Unlock()
		t.Fatal(err)
	}
	cl.ws.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, _, err := cl.ws.ReadMessage()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		wc.wmu.Unlock()
		t.Fatalf("read %v while the write mutex was held, want a timeout (no close frame yet)", err)
	}
	wc.wmu.Unlock()
	// gorilla's read deadline error is permanent on that conn: read the
	// close frame on a fresh reader of the raw stream instead.
	raw := cl.ws.NetConn()
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 4)
	if _, err := io.ReadFull(raw, hdr); err != nil {
		t.Fatalf("no close frame after the mutex was released: %v", err)
	}
	if hdr[0] != 0x88 || int(hdr[2])<<8|int(hdr[3]) != websocket.CloseMessageTooBig {
		t.Fatalf("frame header % x, want a close frame with 1009", hdr)
	}
}
