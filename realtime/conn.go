package realtime

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// conn is one WebSocket connection. The read loop (serve) is the only reader;
// flush is the only writer and runs on demand.
type conn struct {
	srv    *Server
	ws     *websocket.Conn
	id     uint64
	v      phoenix.Version
	enc    *encoder
	apikey string // the connection token, used when a join has no access_token
	info   *channels.ConnInfo

	qmu       sync.Mutex       // guards the fields below up to closeCode
	q         []channels.Frame // frames waiting to be written
	qbytes    int              // bytes in q plus bytes being written
	writing   bool             // a flush goroutine is running
	closing   bool             // no more frames are accepted
	discard   bool             // close without flushing the queue (slow consumer)
	closeCode int
	closeText string
	done      chan struct{} // closed when the socket is closed

	wmu sync.Mutex // serializes writes to the socket: the flush batches and control frames

	mu    sync.Mutex               // guards chans
	chans map[string]*channelState // by topic

	joins rateWindow // join timestamps; read loop only
}

// channelState is one joined channel of a conn. Its fields are guarded by
// conn.mu except sub, which is immutable after creation.
type channelState struct {
	sub      *channels.Subscription
	joinRef  string
	ack      bool
	expiry   *time.Timer
	presence rateWindow
	token    string
	pgBind   []*channels.Binding
}

// logger returns the server logger with this connection's id. It is built
// on use: keeping one per connection would cost memory on every idle
// connection for the rare log line.
func (c *conn) logger() *slog.Logger { return c.srv.log.With("conn_id", c.id) }

// Enqueue implements channels.Writer: it queues f without blocking. Over the
// byte budget the connection is closed as a slow consumer.
func (c *conn) Enqueue(f channels.Frame) bool {
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return false
	}
	if c.qbytes+len(f.Data) > c.srv.cfg.MaxQueueBytes {
		c.closeLocked(channels.ReasonSlowConsumer)
		c.qmu.Unlock()
		return false
	}
	c.q = append(c.q, f)
	c.qbytes += len(f.Data)
	c.startFlushLocked()
	c.qmu.Unlock()
	return true
}

// queuedBytes reports the outgoing backlog.
func (c *conn) queuedBytes() int {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.qbytes
}

// startFlushLocked starts the writer if it is not running. qmu must be held.
func (c *conn) startFlushLocked() {
	if !c.writing {
		c.writing = true
		c.srv.wg.Add(1)
		go c.flush()
	}
}

// Close closes the connection for reason; safe from any goroutine, idempotent.
func (c *conn) Close(reason channels.CloseReason) {
	c.qmu.Lock()
	c.closeLocked(reason)
	c.qmu.Unlock()
}

// closeLocked marks the connection closing and makes sure the writer runs
// to send the close frame. qmu must be held.
func (c *conn) closeLocked(reason channels.CloseReason) {
	if c.closing {
		return
	}
	c.closing = true
	c.closeCode, c.closeText = closeCodeFor(reason)
	if reason == channels.ReasonSlowConsumer {
		c.discard = true
		c.srv.metrics.slowConsumer()
		c.logger().Warn("closing slow consumer", "reason", reason.String(), "queued_bytes", c.qbytes)
	} else {
		c.logger().Debug("closing connection", "reason", reason.String())
	}
	c.startFlushLocked()
}

// closeCodeFor is the one mapping from close reasons to WebSocket close codes.
func closeCodeFor(r channels.CloseReason) (int, string) {
	switch r {
	case channels.ReasonServerShutdown:
		return websocket.CloseGoingAway, "server shutting down"
	case channels.ReasonSlowConsumer:
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

// flush is the connection's only writer. It drains the queue and exits when
// the queue is empty; after a close it sends the close frame and closes the
// socket.
func (c *conn) flush() {
	defer c.srv.wg.Done()
	var batch []channels.Frame
	var out []byte
	for {
		c.qmu.Lock()
		if c.discard || (len(c.q) == 0 && c.closing) {
			code, text := c.closeCode, c.closeText
			c.q = nil
			c.qmu.Unlock()
			c.finish(code, text)
			return
		}
		if len(c.q) == 0 {
			c.writing = false
			c.qmu.Unlock()
			return
		}
		batch, c.q = c.q, batch[:0]
		c.qmu.Unlock()

		// Frame the whole batch into one buffer and write it with one
		// syscall under one deadline, instead of one write per frame.
		n := 0
		var werr error
		out = out[:0]
		for i, f := range batch {
			op := byte(websocket.TextMessage)
			if f.Binary {
				op = websocket.BinaryMessage
			}
			out = appendWSFrame(out, op, f.Data)
			n += len(f.Data)
			batch[i] = channels.Frame{}
			if len(out) >= 64<<10 || i == len(batch)-1 {
				if werr = c.writeRaw(out); werr != nil {
					break
				}
				out = out[:0]
			}
		}
		if cap(out) > 256<<10 {
			out = nil // don't keep a burst's buffer on an idle connection
		}
		if werr != nil {
			c.logger().Debug("write failed", "err", werr)
			c.qmu.Lock()
			if !c.closing {
				c.closing = true
				c.closeCode, c.closeText = websocket.CloseAbnormalClosure, ""
				var ne interface{ Timeout() bool }
				if errors.As(werr, &ne) && ne.Timeout() {
					c.srv.metrics.slowConsumer()
					c.logger().Warn("closing slow consumer", "reason", "write_deadline")
				}
			}
			c.discard = true
			c.qmu.Unlock()
		}
		c.qmu.Lock()
		c.qbytes -= n
		c.qmu.Unlock()
	}
}

// finish sends the close frame (best effort) and half-closes the socket:
// the read loop keeps draining what the client still sends until the
// client's close frame, EOF or a short deadline, and only then closes the
// TCP connection, so the client reads every frame queued before the close
// instead of losing them to a reset.
func (c *conn) finish(code int, text string) {
	select {
	case <-c.done:
		return
	default:
	}
	if code != websocket.CloseAbnormalClosure {
		msg := websocket.FormatCloseMessage(code, text)
		c.wmu.Lock()
		c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		c.wmu.Unlock()
	}
	c.ws.SetReadDeadline(time.Now().Add(closeDrain))
	close(c.done)
}

// closeDrain bounds how long a closing connection waits for the client.
const closeDrain = 2 * time.Second

// closingNow reports whether the connection no longer accepts frames.
func (c *conn) closingNow() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.closing
}

// writeRaw writes pre-framed bytes to the socket under the write deadline.
func (c *conn) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	nc := c.ws.NetConn()
	nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	_, err := nc.Write(b)
	return err
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

// installControlHandlers replaces gorilla's ping and close handlers, which
// write from the read goroutine, with ones that respect wmu (pong) or go
// through the writer (close).
func (c *conn) installControlHandlers() {
	c.ws.SetPingHandler(func(data string) error {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			return err
		}
		return nil
	})
	c.ws.SetCloseHandler(func(code int, text string) error {
		c.Close(channels.ReasonClientLeft)
		return nil
	})
}

// push queues a server message for this connection.
func (c *conn) push(joinRef, ref, topic, event string, payload []byte) {
	c.Enqueue(c.enc.text(joinRef, ref, topic, event, payload))
}

// reply queues a phx_reply.
func (c *conn) reply(joinRef, ref, topic string, ok bool, response []byte) {
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
func (c *conn) replyError(joinRef, ref, topic, reason string) {
	r := phoenix.AppendJSONString([]byte(`{"reason":`), reason)
	c.reply(joinRef, ref, topic, false, append(r, '}'))
}
