package realtime

import (
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// wsConn is one WebSocket connection speaking the Phoenix-channels
// protocol (docs/protocol.md §1). Its read loop is the only reader; its
// session's outbox is the only writer of data frames.
type wsConn struct {
	*session
	ws  *websocket.Conn
	v   phoenix.Version
	enc *encoder

	wmu    sync.Mutex      // serializes socket writes: ours, and the library's through lockedConn
	nc     net.Conn        // the socket under lockedConn: write it holding wmu
	cut    []byte          // under wmu: the end of a frame a non-blocking write cut off
	cutErr error           // under wmu: why writing cut failed, once it was written by the library's write
	raw    syscall.RawConn // the socket, for direct writes; nil when it has no descriptor
	rw     rawWrite        // under wmu: the direct write in progress
	// fd is the socket's descriptor for batched writes (writeBatch), -1
	// when it has none. It stays valid while wmu is held: the socket is
	// closed only through lockedConn.Close, which takes wmu.
	fd int

	joins joinBucket // join tokens; read loop only

	release func() // frees the connection's admission slot
}

// handleWebSocket checks the API key, upgrades and serves one connection
// (docs/protocol.md §1).
func (s *Server) handleWebSocket(w http.ResponseWriter, r *http.Request) {
	vsn, ok := phoenix.ParseVersion(r.URL.Query().Get("vsn"))
	if !ok {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	creds := readCredentials(r)
	if tok := phoenixAuthToken(r); tok != "" {
		if creds.apiKey == "" {
			creds.apiKey = tok
		} else if creds.user == "" && !isOpaqueKey(tok) {
			creds.user = tok
		}
	}
	if creds.apiKey == "" {
		s.log.Info("connection refused", "remote_addr", r.RemoteAddr, "err", "API key is missing")
		writeJSONError(w, http.StatusUnauthorized, "API key is missing")
		return
	}
	v, err := s.verify(creds.apiKey)
	if err != nil {
		s.log.Info("connection refused", "remote_addr", r.RemoteAddr, "err", err)
		writeJSONError(w, auth.ConnectStatus(err), auth.ConnectMessage(err))
		return
	}
	creds.apiKey = v.token // one shared copy per distinct token
	if s.shuttingDown() {
		writeJSONError(w, http.StatusServiceUnavailable, "Realtime is restarting, please standby")
		return
	}
	if s.joinsBlocked() {
		s.log.Debug("connection refused: join rate limit reached", "remote_addr", r.RemoteAddr)
		writeJSONError(w, http.StatusTooManyRequests, msgTooManyJoins)
		return
	}
	release, ok := s.admit(w, r)
	if !ok {
		return
	}
	c := &wsConn{v: vsn, enc: encoderFor(vsn), release: release}
	hj := &lockingHijacker{ResponseWriter: w, w: c}
	ws, err := s.upgrader.Upgrade(hj, r, nil)
	if err != nil {
		release()
		s.log.Debug("websocket upgrade failed", "err", err)
		return
	}
	c.ws = ws
	c.setSocket(hj.inner)
	c.session = s.newSession(transportWebSocket, creds, c.enc, remote{addr: remoteAddr(r), version: vsn.String()})
	c.headers = xHeaders(r)
	c.attach(c, c)
	if !s.track(c.session) {
		c.out.Close(channels.ReasonServerShutdown)
		<-c.out.done
		ws.Close()
		release()
		return
	}
	s.metrics.connsTotal.Add(1)
	c.logger().Debug("connected", "vsn", vsn.String(), "role", v.claims.Role)
	c.installControlHandlers()
	c.ws.SetReadLimit(s.cfg.MaxFrameBytes)
	// Serve on a fresh goroutine and let the handler return: net/http's
	// per-connection buffers, the request and the handler's deep stack are
	// then freed (about 11 KB per idle connection).
	s.wg.Add(1)
	go c.readLoop()
}

// readLoop reads frames and handles them strictly in order; it runs on
// its own goroutine (counted in srv.wg). After a frame whose handling grows
// the stack (a join decodes JSON and verifies a JWT) it continues on a
// fresh goroutine and returns, so the long-lived reader of an idle
// connection keeps a small stack. When the socket closes, every channel
// of the connection is left.
func (c *wsConn) readLoop() {
	handedOver := false
	defer func() {
		if !handedOver {
			c.cleanup()
			c.srv.wg.Done()
		}
	}()
	for {
		closing := c.out.closed()
		if !closing {
			c.ws.SetReadDeadline(time.Now().Add(c.srv.cfg.IdleTimeout))
		}
		mt, data, err := c.ws.ReadMessage()
		if closing || c.out.closed() {
			if err != nil {
				return
			}
			continue // draining after our close frame
		}
		if err != nil {
			var ne interface{ Timeout() bool }
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				c.out.Close(channels.ReasonIdle)
			case errors.Is(err, websocket.ErrReadLimit):
				c.logger().Warn("frame over the size limit", "limit", c.srv.cfg.MaxFrameBytes)
				c.out.Close(channels.ReasonProtocol)
				c.drainRefused()
			default:
				c.out.Close(channels.ReasonClientLeft)
			}
			return
		}
		c.srv.metrics.messageIn(mt == websocket.BinaryMessage)
		if c.handleFrame(mt, data) {
			handedOver = true
			go c.readLoop()
			return
		}
	}
}

// drainRefused reads and discards, for up to closeDrain and refusedDrain
// bytes, what a client whose frame was refused from its header still
// sends, once the close frame (1009, written by the WebSocket library) is
// out: a socket closed with unread input is reset, and the reset can
// destroy the close frame before the client reads it.
func (c *wsConn) drainRefused() {
	select {
	case <-c.out.done:
	case <-time.After(closeDrain):
		return
	}
	nc := c.ws.NetConn()
	nc.SetReadDeadline(time.Now().Add(closeDrain))
	io.CopyN(io.Discard, nc, refusedDrain)
}

// refusedDrain bounds what drainRefused reads.
const refusedDrain = 8 << 20

// cleanup ends the session after the socket closed and releases the socket
// once the writer has finished.
func (c *wsConn) cleanup() {
	c.end(channels.ReasonClientLeft)
	<-c.out.done
	c.ws.Close()
	c.srv.forget(c.session)
	c.release()
}

// write implements link: the batch is framed into one buffer and written
// with one syscall per 64 KiB under one deadline, instead of one write per
// frame.
func (c *wsConn) write(frames []channels.Frame) error {
	bp := frameBufs.Get().(*[]byte)
	out := (*bp)[:0]
	defer func() {
		if cap(out) <= maxPooledFrame {
			*bp = out[:0]
		}
		frameBufs.Put(bp)
	}()
	for i, f := range frames {
		out = appendFrame(out, f)
		if len(out) >= 64<<10 || i == len(frames)-1 {
			if err := c.writeRaw(out); err != nil {
				return err
			}
			out = out[:0]
		}
	}
	return nil
}

// finish implements link: it sends the close frame (unless the socket is
// broken) and half-closes: the read loop keeps draining what the client
// still sends until its close frame, EOF or a short deadline, and only
// then is the TCP connection closed, so the client reads every frame
// queued before the close instead of losing them to a reset.
func (c *wsConn) finish(reason channels.CloseReason, broken bool) {
	if !broken {
		code, text := closeCodeFor(reason)
		c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
	}
	c.ws.SetReadDeadline(time.Now().Add(closeDrain))
}

// closeDrain bounds how long a closing connection waits for the client.
const closeDrain = 2 * time.Second

// closeCodeFor is the one mapping from close reasons to WebSocket close
// codes and texts (docs/protocol.md §7.3).
func closeCodeFor(r channels.CloseReason) (int, string) {
	switch r {
	case channels.ReasonServerShutdown:
		// 1012, as Phoenix closes a draining socket: every client
		// reconnects on it, where some treat 1001 as a normal end.
		return websocket.CloseServiceRestart, "server shutting down"
	case channels.ReasonSlowConsumer, channels.ReasonWriteDeadline:
		return websocket.ClosePolicyViolation, "slow consumer"
	case channels.ReasonRateLimit:
		return websocket.ClosePolicyViolation, "rate limit"
	case channels.ReasonIdle:
		return websocket.CloseNormalClosure, "idle timeout"
	case channels.ReasonProtocol:
		return websocket.CloseProtocolError, "protocol error"
	case channels.ReasonAdmin:
		return websocket.CloseServiceRestart, "disconnected by operator"
	}
	return websocket.CloseNormalClosure, ""
}

// phoenixAuthToken returns the token Phoenix's JS client carries in
// Sec-WebSocket-Protocol ("phoenix", "base64url.bearer.phx.<token>") when
// its authToken option is set, or "" (docs/protocol.md §1.2).
func phoenixAuthToken(r *http.Request) string {
	const prefix = "base64url.bearer.phx."
	for _, p := range websocket.Subprotocols(r) {
		enc, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		enc = strings.TrimRight(enc, "=")
		enc = strings.NewReplacer("-", "+", "_", "/").Replace(enc)
		tok, err := base64.RawStdEncoding.DecodeString(enc)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(tok))
	}
	return ""
}

// writeRaw writes pre-framed bytes to the socket under the write deadline.
func (c *wsConn) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(b)
}

// writeLocked writes b under the write deadline. wmu must be held.
func (c *wsConn) writeLocked(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	_, err := c.nc.Write(b)
	return err
}

// writeEncoded implements directLink: b is what tryWrite left, and it is
// written unless the library's own write finished the frame first
// (lockedConn.Write).
func (c *wsConn) writeEncoded(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.cut == nil {
		return c.cutErr
	}
	c.cut = nil
	return c.writeLocked(b)
}

// finishCutLocked writes the end of a frame cut off by a non-blocking
// write, before the library writes a frame of its own. wmu must be held.
func (c *wsConn) finishCutLocked() error {
	if c.cut == nil {
		return nil
	}
	cut := c.cut
	c.cut = nil
	if _, err := c.nc.Write(cut); err != nil {
		c.cutErr = err
		return err
	}
	return nil
}

// setSocket records the connection's socket, and its descriptor for direct
// writes when it has one.
func (c *wsConn) setSocket(nc net.Conn) {
	c.nc = nc
	c.fd = -1
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
		c.rw.fn = c.rw.write
		if c.raw != nil {
			c.raw.Control(func(fd uintptr) { c.fd = int(fd) })
		}
	}
}

// tryWrite implements directLink with one non-blocking write(2) on the
// socket's descriptor (Go keeps sockets non-blocking): a full send buffer
// leaves the rest to the writer goroutine instead of waiting.
func (c *wsConn) tryWrite(frames []channels.Frame) (rest []byte, tried bool, err error) {
	if c.raw == nil || !c.wmu.TryLock() {
		return nil, false, nil
	}
	defer c.wmu.Unlock()
	bp := frameBufs.Get().(*[]byte)
	defer frameBufs.Put(bp)
	buf := (*bp)[:0]
	for _, f := range frames {
		buf = appendFrame(buf, f)
	}
	if cap(buf) <= maxPooledFrame {
		*bp = buf
	}
	c.rw.buf = buf
	cerr := c.raw.Write(c.rw.fn)
	n, werr := c.rw.n, c.rw.err
	c.rw = rawWrite{fn: c.rw.fn}
	if cerr != nil {
		if errors.Is(cerr, os.ErrDeadlineExceeded) {
			// The deadline of an earlier blocking write has passed; the
			// writer goroutine sets a fresh one.
			return nil, false, nil
		}
		return nil, true, cerr
	}
	rest, err = c.afterWriteLocked(buf, n, werr)
	return rest, true, err
}

// afterWriteLocked settles a non-blocking write of buf that wrote n bytes
// or failed with werr: it returns the bytes left to write (noted as cut,
// for the library's writes) or why the socket is broken. wmu must be
// held.
func (c *wsConn) afterWriteLocked(buf []byte, n int, werr error) (rest []byte, err error) {
	if werr == syscall.EAGAIN || werr == syscall.EINTR {
		n, werr = 0, nil
	}
	if werr != nil {
		return nil, werr
	}
	if n < len(buf) {
		rest = append([]byte(nil), buf[max(n, 0):]...)
		c.cut = rest
	}
	return rest, nil
}

// beginBatched implements batchLink: it takes the socket for a write a
// writeBatch makes and returns its descriptor, or ok false when another
// write holds the socket.
func (c *wsConn) beginBatched() (fd int, ok bool) {
	if c.raw == nil || c.fd < 0 || !c.wmu.TryLock() {
		return -1, false
	}
	return c.fd, true
}

// endBatched implements batchLink.
func (c *wsConn) endBatched(buf []byte, n int, werr error) (rest []byte, err error) {
	defer c.wmu.Unlock()
	return c.afterWriteLocked(buf, n, werr)
}

// rawWrite is one non-blocking write(2) of buf as a RawConn.Write
// callback. A connection keeps one, its callback bound once, so a direct
// write allocates nothing.
type rawWrite struct {
	buf []byte
	n   int
	err error
	fn  func(fd uintptr) bool // rw.write, bound once
}

// write writes buf once and never waits for the socket.
func (w *rawWrite) write(fd uintptr) bool {
	w.n, w.err = syscall.Write(int(fd), w.buf)
	return true
}

// frameBufs holds encoding buffers for direct writes and write batches.
var frameBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledFrame bounds the buffers kept in frameBufs: a batch is written
// every 64 KiB, so its buffer stays under this unless one frame is larger.
const maxPooledFrame = 128 << 10

// appendFrame appends f as a text or binary WebSocket frame.
func appendFrame(dst []byte, f channels.Frame) []byte {
	op := byte(websocket.TextMessage)
	if f.Binary {
		op = websocket.BinaryMessage
	}
	return appendWSFrame(dst, op, f.Data)
}

// appendWSFrame appends one unmasked, unfragmented server frame (RFC 6455
// §5.2): FIN, opcode, payload length, payload.
func appendWSFrame(dst []byte, opcode byte, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, 0x80|opcode)
	switch {
	case n < 126:
		dst = append(dst, byte(n))
	case n <= 0xffff:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		u := uint64(n)
		dst = append(dst, 127, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32), byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
	}
	return append(dst, payload...)
}

// installControlHandlers replaces gorilla's ping and close handlers: the
// pong is written from the read goroutine through lockedConn (so under
// wmu), the close goes through the outbox.
func (c *wsConn) installControlHandlers() {
	c.ws.SetPingHandler(func(data string) error {
		err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			return err
		}
		return nil
	})
	c.ws.SetCloseHandler(func(code int, text string) error {
		c.out.Close(channels.ReasonClientLeft)
		return nil
	})
}

// systemFrame implements transport: a system message carrying the
// channel's join_ref.
func (c *wsConn) systemFrame(ch *channelState, payload []byte) channels.Frame {
	return c.enc.text(ch.joinRef, "", ch.sub.Topic, "system", payload)
}

// channelClosed implements transport: a system error with msg (when
// given), then phx_close, so the client does not rejoin
// (docs/protocol.md §7.3).
func (c *wsConn) channelClosed(ch *channelState, msg string, _ channels.CloseReason) {
	if msg != "" {
		c.out.Enqueue(c.systemFrame(ch, systemPayload("system", "error", msg, ch.sub.Name)))
	}
	c.push(ch.joinRef, ch.joinRef, ch.sub.Topic, "phx_close", nil)
}

// push queues a server message for this connection.
func (c *wsConn) push(joinRef, ref, topic, event string, payload []byte) {
	c.out.Enqueue(c.enc.text(joinRef, ref, topic, event, payload))
}

// reply queues a phx_reply with status ok or error.
func (c *wsConn) reply(joinRef, ref, topic string, ok bool, response []byte) {
	status := "ok"
	if !ok {
		status = "error"
	}
	if len(response) == 0 {
		response = []byte("{}")
	}
	p := make([]byte, 0, len(response)+32)
	p = append(p, `{"status":"`...)
	p = append(p, status...)
	p = append(p, `","response":`...)
	p = append(p, response...)
	p = append(p, '}')
	c.push(joinRef, ref, topic, "phx_reply", p)
}

// replyError queues an error reply with {"reason": reason}.
func (c *wsConn) replyError(joinRef, ref, topic, reason string) {
	r := phoenix.AppendJSONString([]byte(`{"reason":`), reason)
	c.reply(joinRef, ref, topic, false, append(r, '}'))
}
