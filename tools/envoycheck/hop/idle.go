package hop

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// idleListener wraps every accepted connection in an idleConn.
type idleListener struct {
	net.Listener
	// idle is the timeout a connection starts with (the connection
	// manager's connection idle_timeout); requests change it per route.
	idle time.Duration
	// track registers the connection with its Gateway; false means the
	// Gateway is closed and the connection is refused.
	track func(*idleConn) bool
}

// Accept returns the next connection, wrapped. Connections that arrive
// while the Gateway is closing are closed at once; Accept then waits for the
// next one, and for the listener's own close.
func (l *idleListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ic := &idleConn{Conn: c}
		if l.track != nil && !l.track(ic) {
			ic.Close()
			continue
		}
		ic.SetIdle(l.idle) // after track has set the callbacks the timer may run
		return ic, nil
	}
}

// idleConn closes itself when no byte has moved in either direction for its
// current idle timeout. Reads and writes that move at least one byte are the
// activity; a Read blocked waiting is not. The timer is re-armed lazily: when
// it fires it compares the last activity with the deadline and either closes
// the connection or sleeps for the remainder, so I/O never touches the timer.
//
// Safe for concurrent use (the ReverseProxy copies both directions of a
// WebSocket in two goroutines).
type idleConn struct {
	net.Conn
	last atomic.Int64 // unix nanoseconds of the last byte moved

	mu     sync.Mutex    // guards idle, gen, timer and closed
	idle   time.Duration // current timeout; 0 disables
	gen    uint64        // bumped by SetIdle so a stale timer does nothing
	timer  *time.Timer
	closed bool

	// onClose, set before the connection is used, runs once on Close.
	onClose func()
	// onExpire, set before the connection is used, runs when the idle
	// timer closes the connection.
	onExpire func()
}

// SetIdle changes the idle timeout, counting from now; 0 disables it.
func (c *idleConn) SetIdle(d time.Duration) {
	c.last.Store(time.Now().UnixNano())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.gen++
	c.idle = d
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if d > 0 {
		c.armLocked(d)
	}
}

// armLocked starts a timer for the current generation. c.mu is held.
func (c *idleConn) armLocked(after time.Duration) {
	gen := c.gen
	c.timer = time.AfterFunc(after, func() { c.check(gen) })
}

// check runs when a timer fires: it closes the connection if it has been
// quiet for the whole timeout, or re-arms for the remainder.
func (c *idleConn) check(gen uint64) {
	c.mu.Lock()
	if c.closed || gen != c.gen || c.idle <= 0 {
		c.mu.Unlock()
		return
	}
	quiet := time.Since(time.Unix(0, c.last.Load()))
	if quiet < c.idle {
		c.armLocked(c.idle - quiet)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	if c.onExpire != nil {
		c.onExpire()
	}
	c.Close()
}

// Read reads from the connection and counts the bytes as activity.
func (c *idleConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// Write writes to the connection and counts the bytes as activity.
func (c *idleConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// Close stops the timer and closes the connection. Calls after the first
// return the underlying connection's error for a second close.
func (c *idleConn) Close() error {
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	first := !c.closed
	c.closed = true
	c.mu.Unlock()
	if first && c.onClose != nil {
		c.onClose()
	}
	return c.Conn.Close()
}
