package pglitebridge

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// outQueue is how many frames may wait for the link's writer; senders
// block beyond it (a database connection, unlike a subscriber, may wait).
const outQueue = 256

// readChunk is the most bytes one data frame carries from the service.
const readChunk = 32 << 10

var errLinkGone = errors.New("pglitebridge: the page disconnected")

// link is one connected page. Its read loop (serve) is the only reader of
// ws and its writer goroutine the only writer of data frames (control
// frames may be written from anywhere, which gorilla allows).
type link struct {
	b    *Bridge
	ws   *websocket.Conn
	out  chan []byte   // frames for the writer
	done chan struct{} // closed by fail
	once sync.Once

	mu    sync.Mutex // guards conns, err
	conns map[uint32]*vconn
	err   error // why the link ended; set once by fail
}

func newLink(b *Bridge, ws *websocket.Conn) *link {
	return &link{b: b, ws: ws, out: make(chan []byte, outQueue), done: make(chan struct{}), conns: make(map[uint32]*vconn)}
}

// serve greets the page, starts the writer and reads frames until the
// link ends; it returns why.
func (l *link) serve() error {
	l.ws.SetWriteDeadline(time.Now().Add(l.b.cfg.WriteTimeout))
	if err := l.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ready"}`)); err != nil {
		l.fail(fmt.Errorf("pglitebridge: send ready: %w", err))
		return l.cause()
	}
	go l.writeLoop()
	idle := 3 * l.b.cfg.PingInterval
	l.ws.SetPongHandler(func(string) error { return l.ws.SetReadDeadline(time.Now().Add(idle)) })
	for {
		l.ws.SetReadDeadline(time.Now().Add(idle))
		mt, data, err := l.ws.ReadMessage()
		if err != nil {
			l.fail(fmt.Errorf("pglitebridge: read: %w", err))
			return l.cause()
		}
		if mt != websocket.BinaryMessage {
			continue // text messages are reserved for the handshake
		}
		op, id, payload, err := parseFrame(data)
		if err == nil && op == opOpen {
			err = errors.New("pglitebridge: the page may not open connections")
		}
		if err != nil {
			l.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(CloseProtocol, err.Error()), time.Now().Add(time.Second))
			l.fail(err)
			return err
		}
		l.mu.Lock()
		c := l.conns[id]
		l.mu.Unlock()
		if c == nil {
			continue // already closed on this side
		}
		if op == opData {
			c.deliver(payload)
		} else {
			c.shut(false)
		}
	}
}

// cause returns why the link ended.
func (l *link) cause() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// writeLoop writes queued frames and keepalive pings until the link ends.
func (l *link) writeLoop() {
	ping := time.NewTicker(l.b.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-l.done:
			return
		case f := <-l.out:
			l.ws.SetWriteDeadline(time.Now().Add(l.b.cfg.WriteTimeout))
			if err := l.ws.WriteMessage(websocket.BinaryMessage, f); err != nil {
				l.fail(fmt.Errorf("pglitebridge: write: %w", err))
				return
			}
		case <-ping.C:
			if err := l.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(l.b.cfg.WriteTimeout)); err != nil {
				l.fail(fmt.Errorf("pglitebridge: ping: %w", err))
				return
			}
		}
	}
}

// send queues a frame for the writer; it fails once the link is gone.
func (l *link) send(f []byte) error {
	select {
	case l.out <- f:
		return nil
	case <-l.done:
		return errLinkGone
	}
}

// fail ends the link: the WebSocket closes and every virtual connection
// reads EOF.
func (l *link) fail(err error) {
	l.once.Do(func() {
		l.mu.Lock()
		l.err = err
		conns := l.conns
		l.conns = nil
		l.mu.Unlock()
		close(l.done)
		l.ws.Close()
		for _, c := range conns {
			c.shut(false)
		}
	})
}

// open starts virtual connection id and returns the service's end of it.
func (l *link) open(id uint32) (net.Conn, error) {
	app, end := net.Pipe()
	c := &vconn{id: id, l: l, end: end, wake: make(chan struct{}, 1), gone: make(chan struct{})}
	l.mu.Lock()
	if l.conns == nil {
		l.mu.Unlock()
		return nil, errLinkGone
	}
	l.conns[id] = c
	l.mu.Unlock()
	if err := l.send(appendFrame(nil, opOpen, id, nil)); err != nil {
		c.shut(false)
		return nil, err
	}
	go c.pumpOut()
	go c.pumpIn()
	return app, nil
}

// forget removes c from the link's table.
func (l *link) forget(c *vconn) {
	l.mu.Lock()
	if l.conns[c.id] == c {
		delete(l.conns, c.id)
	}
	l.mu.Unlock()
}

// vconn is one virtual connection. The service holds the other end of a
// net.Pipe; pumpOut frames what the service writes, pumpIn feeds it what
// the page sent, through an in-memory queue so that a connection that does
// not read never stalls the link's read loop.
type vconn struct {
	id   uint32
	l    *link
	end  net.Conn      // the bridge's end of the pipe
	wake chan struct{} // signals pumpIn; capacity 1
	gone chan struct{} // closed by shut
	once sync.Once

	mu     sync.Mutex // guards queue, queued
	queue  [][]byte
	queued int // bytes in queue
}

// deliver queues bytes from the page; a connection that lets more than
// MaxBuffered pile up is closed.
func (c *vconn) deliver(p []byte) {
	c.mu.Lock()
	c.queue = append(c.queue, p)
	c.queued += len(p)
	over := c.queued > c.l.b.cfg.MaxBuffered
	c.mu.Unlock()
	if over {
		c.l.b.log.Warn("pglite bridge connection closed: too much unread data", "conn", c.id)
		c.shut(true)
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// pumpIn writes queued page bytes into the pipe until the connection ends.
func (c *vconn) pumpIn() {
	for {
		select {
		case <-c.wake:
		case <-c.gone:
			return
		}
		for {
			c.mu.Lock()
			if len(c.queue) == 0 {
				c.mu.Unlock()
				break
			}
			p := c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			c.queued -= len(p)
			c.mu.Unlock()
			if _, err := c.end.Write(p); err != nil {
				c.shut(true)
				return
			}
		}
	}
}

// pumpOut frames what the service writes until it closes its end.
func (c *vconn) pumpOut() {
	buf := make([]byte, readChunk)
	for {
		n, err := c.end.Read(buf)
		if n > 0 {
			if c.l.send(appendFrame(make([]byte, 0, frameHeader+n), opData, c.id, buf[:n])) != nil {
				c.shut(false)
				return
			}
		}
		if err != nil {
			c.shut(!errors.Is(err, io.ErrClosedPipe))
			return
		}
	}
}

// shut ends the connection once; tell says whether the page must be told
// (it is not when the page closed it or the link is gone).
func (c *vconn) shut(tell bool) {
	c.once.Do(func() {
		close(c.gone)
		c.end.Close()
		c.l.forget(c)
		if tell {
			select {
			case c.l.out <- appendFrame(nil, opClose, c.id, nil):
			case <-c.l.done:
			}
		}
	})
}
