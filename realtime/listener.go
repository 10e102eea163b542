package realtime

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// GuardListener wraps ln so that running out of file descriptors never
// stops the service (docs/operations.md "Connection limits"):
//
//   - Accept errors EMFILE and ENFILE are logged (once per episode) and
//     retried with a growing pause (5 ms up to 1 s) instead of spinning;
//   - at most maxOpen accepted connections are open at once: past that a
//     new connection is closed as soon as it is accepted, so idle sockets
//     that never send a request cannot take the last descriptors.
//
// maxOpen <= 0 means no cap. The returned listener is safe for concurrent
// use; OpenConns reports its open connections.
func GuardListener(ln net.Listener, maxOpen int, log *slog.Logger) *Guarded {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Guarded{Listener: ln, max: int64(maxOpen), log: log}
}

// Guarded is a listener returned by GuardListener.
type Guarded struct {
	net.Listener
	max  int64
	log  *slog.Logger
	open atomic.Int64 // accepted connections not yet closed
	shed atomic.Int64 // connections closed at accept because of max
}

// OpenConns returns how many accepted connections are open.
func (g *Guarded) OpenConns() int64 { return g.open.Load() }

// Shed returns how many connections were closed at accept because the
// listener was at its cap.
func (g *Guarded) Shed() int64 { return g.shed.Load() }

// Accept implements net.Listener.
func (g *Guarded) Accept() (net.Conn, error) {
	var pause time.Duration
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
				return nil, err
			}
			if pause == 0 {
				pause = 5 * time.Millisecond
				g.log.Warn("accept: out of file descriptors; backing off (see docs/operations.md on ulimit)", "err", err)
			} else {
				pause = min(2*pause, time.Second)
			}
			time.Sleep(pause)
			continue
		}
		pause = 0
		if g.max > 0 && g.open.Load() >= g.max {
			g.shed.Add(1)
			c.Close()
			continue
		}
		g.open.Add(1)
		return &guardedConn{Conn: c, g: g}, nil
	}
}

// guardedConn counts itself out of the listener's open connections once.
type guardedConn struct {
	net.Conn
	g    *Guarded
	once sync.Once
}

// Close implements net.Conn.
func (c *guardedConn) Close() error {
	c.once.Do(func() { c.g.open.Add(-1) })
	return c.Conn.Close()
}

// SyscallConn exposes the socket's descriptor for direct writes (see
// directLink); it fails when the accepted connection has none.
func (c *guardedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("realtime: connection has no descriptor")
	}
	return sc.SyscallConn()
}
