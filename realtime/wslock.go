package realtime

import (
	"bufio"
	"net"
	"net/http"
	"time"
)

// lockedConn is the connection the WebSocket library writes through: its
// writes and write deadlines take the connection's write mutex, so the
// frames the library writes on its own (the close frame after an
// oversized message or a protocol error, pongs) never interleave with
// ours (the end of a frame a non-blocking write cut off goes first), and
// never hold the descriptor while a direct write waits for it
// (docs/protocol.md §1). The service's own writes use the embedded
// connection under the same mutex.
type lockedConn struct {
	net.Conn
	w *wsConn
}

// Write implements net.Conn under the write mutex, after the end of any
// frame of ours a non-blocking write cut off.
func (c *lockedConn) Write(b []byte) (int, error) {
	c.w.wmu.Lock()
	defer c.w.wmu.Unlock()
	if err := c.w.finishCutLocked(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// Close implements net.Conn under the write mutex, so a batched write
// holding the socket's descriptor (writeBatch) ends before the descriptor
// is released and can be reused.
func (c *lockedConn) Close() error {
	c.w.wmu.Lock()
	defer c.w.wmu.Unlock()
	return c.Conn.Close()
}

// SetWriteDeadline implements net.Conn under the write mutex, so the
// library's deadline for a control frame cannot cut short a write of ours
// in progress.
func (c *lockedConn) SetWriteDeadline(t time.Time) error {
	c.w.wmu.Lock()
	defer c.w.wmu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline implements net.Conn; the write half under the write mutex.
func (c *lockedConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// lockingHijacker hands the WebSocket library a lockedConn when it
// hijacks the HTTP connection; inner is the connection it wraps.
type lockingHijacker struct {
	http.ResponseWriter
	w     *wsConn
	inner net.Conn
}

// Hijack implements http.Hijacker.
func (h *lockingHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.inner = nc
	return &lockedConn{Conn: nc, w: h.w}, brw, nil
}
