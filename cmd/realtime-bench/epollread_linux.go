//go:build linux

package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"

	"github.com/openrealtime/realtime/internal/uring"
)

// The epoll reader serves every subscriber socket of the tool from a few
// poller goroutines, one read(2) per readable socket, instead of one
// goroutine per socket whose read(2) is followed by a second one that finds
// nothing and parks it. The tool shares the machine with the service it
// measures, so what the tool spends reading is taken from the service
// (docs/benchmarks.md, "How to run").

// defaultReader is the epoll reader with batched reads where it exists
// (it falls back to one read(2) per socket when the kernel refuses
// io_uring).
const defaultReader = readerURing

// ringChunk is the room each readable socket gets in a batched read; a
// socket with more stays readable and is read again on the next round.
const ringChunk = 16 << 10

// pollerSet is the process's epoll reader goroutines of one kind,
// started on first use.
type pollerSet struct {
	once sync.Once
	list []*poller
	next int
	mu   sync.Mutex // guards next
	err  error
}

// pollers are the sets of the epoll reader (0) and the uring reader (1).
var pollers [2]pollerSet

// poller is one epoll instance and the goroutine that waits on it. Its
// goroutine alone reads the registered connections and runs their
// handlers; slots maps an event's slot number to its connection.
type poller struct {
	epfd int
	f    *os.File        // epfd, kept open for the process's life
	rc   syscall.RawConn // epfd in Go's poller
	buf  []byte          // the poller goroutine's read buffer

	// With --reader uring, the readable sockets of one epoll_wait are read
	// in one io_uring submission. bmu is held from looking the sockets up
	// to the end of that submission, and end takes it, so no descriptor is
	// closed (and reused) while the ring reads it.
	ring  *uring.Ring
	bmu   sync.Mutex
	arena []byte // ringChunk per socket
	reps  []*epConn
	rfds  []int
	rbufs [][]byte
	rres  []int32

	mu    sync.Mutex // guards slots and free
	slots []*epConn
	free  []int32
}

// epConn is a connection served by a poller: the socket's descriptor, the
// bytes of a frame not complete yet, and a fragmented message being put
// together.
type epConn struct {
	c      *wsConn
	rc     syscall.RawConn
	p      *poller
	slot   int32
	fd     int    // the socket's descriptor, for batched reads
	carry  []byte // the start of an incomplete frame
	frag   []byte // payload of a fragmented message so far
	fragOp byte
	ended  sync.Once
}

// startEpollRead hands c's reading to a poller, whose reads are batched
// through io_uring when batched is set (see --reader). It fails, leaving c to the
// goroutine reader, when c's socket is not TCP or epoll is unavailable.
func startEpollRead(c *wsConn, batched bool) error {
	tc, ok := c.ws.NetConn().(*net.TCPConn)
	if !ok {
		return errors.New("bench: epoll reader: not a TCP connection")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return fmt.Errorf("bench: epoll reader: %w", err)
	}
	set := &pollers[0]
	if batched {
		set = &pollers[1]
	}
	set.once.Do(func() { set.start(batched) })
	if set.err != nil {
		return set.err
	}
	set.mu.Lock()
	p := set.list[set.next%len(set.list)]
	set.next++
	set.mu.Unlock()
	e := &epConn{c: c, rc: rc, p: p}
	c.ep = e
	if err := rc.Control(func(fd uintptr) { e.fd = int(fd) }); err != nil {
		c.ep = nil
		return fmt.Errorf("bench: epoll reader: %w", err)
	}
	p.add(e) // publishes e (and its fd) to the poller
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: e.slot}
		cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	}); err != nil {
		cerr = err
	}
	if cerr != nil {
		p.remove(e)
		c.ep = nil
		return fmt.Errorf("bench: epoll reader: register: %w", cerr)
	}
	return nil
}

// start starts one poller per usable CPU, at most four, each with an
// io_uring for batched reads when batched is set and the kernel allows.
func (set *pollerSet) start(batched bool) {
	n := min(runtime.GOMAXPROCS(0), 4)
	for range n {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			set.err = fmt.Errorf("bench: epoll reader: %w", err)
			return
		}
		if err := syscall.SetNonblock(fd, true); err != nil {
			set.err = fmt.Errorf("bench: epoll reader: %w", err)
			return
		}
		f := os.NewFile(uintptr(fd), "epoll")
		rc, err := f.SyscallConn()
		if err != nil {
			set.err = fmt.Errorf("bench: epoll reader: %w", err)
			return
		}
		p := &poller{epfd: fd, f: f, rc: rc, buf: make([]byte, 256<<10)}
		if batched {
			if r, err := uring.New(); err == nil {
				p.ring = r
				p.arena = make([]byte, uring.Entries*ringChunk)
			}
		}
		set.list = append(set.list, p)
		go p.run()
	}
}

// add gives e a slot.
func (p *poller) add(e *epConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		e.slot = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		e.slot = int32(len(p.slots))
		p.slots = append(p.slots, nil)
	}
	p.slots[e.slot] = e
}

// remove frees e's slot.
func (p *poller) remove(e *epConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slots[e.slot] == e {
		p.slots[e.slot] = nil
		p.free = append(p.free, e.slot)
	}
}

// lookup returns the connection in slot, or nil once it has ended.
func (p *poller) lookup(slot int32) *epConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(slot) < len(p.slots) {
		return p.slots[slot]
	}
	return nil
}

// run waits for readable sockets and serves each with one read. The epoll
// instance is itself waited on in Go's poller, so the goroutine never
// blocks its thread in epoll_wait (a blocking system call hands the
// goroutine's processor away and makes it queue for one on return).
func (p *poller) run() {
	events := make([]syscall.EpollEvent, 256)
	for {
		var n int
		var werr error
		err := p.rc.Read(func(fd uintptr) bool {
			n, werr = syscall.EpollWait(int(fd), events, 0)
			if werr == syscall.EINTR {
				n, werr = 0, nil
			}
			return n > 0 || werr != nil
		})
		if err == nil {
			err = werr
		}
		if err != nil {
			panic(fmt.Sprintf("bench: epoll_wait: %v", err))
		}
		if p.ring != nil {
			p.readBatch(events[:n])
			continue
		}
		for i := range n {
			if e := p.lookup(events[i].Fd); e != nil {
				e.readOnce(p.buf)
			}
		}
	}
}

// readBatch reads every socket of events in one io_uring submission, then
// handles what each returned. Should the ring fail, the poller goes back
// to one read(2) per socket; epoll reports the sockets not read again.
func (p *poller) readBatch(events []syscall.EpollEvent) {
	p.bmu.Lock()
	p.reps, p.rfds, p.rbufs, p.rres = p.reps[:0], p.rfds[:0], p.rbufs[:0], p.rres[:0]
	for _, ev := range events {
		e := p.lookup(ev.Fd)
		if e == nil {
			continue
		}
		i := len(p.reps)
		p.reps = append(p.reps, e)
		p.rfds = append(p.rfds, e.fd)
		p.rbufs = append(p.rbufs, p.arena[i*ringChunk:(i+1)*ringChunk])
		p.rres = append(p.rres, 0)
	}
	err := p.ring.Recv(p.rfds, p.rbufs, p.rres)
	p.bmu.Unlock()
	if err != nil {
		p.ring.Close()
		p.ring = nil
		return
	}
	for i, e := range p.reps {
		if r := p.rres[i]; r >= 0 {
			e.handle(p.rbufs[i], int(r), nil)
		} else {
			e.handle(p.rbufs[i], 0, syscall.Errno(-r))
		}
	}
	clear(p.reps)
}

// readOnce reads what the socket has (up to buf's size) and handles every
// complete frame in it.
func (e *epConn) readOnce(buf []byte) {
	var n int
	var rerr error
	err := e.rc.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), buf)
		return true // never wait in Go's poller: epoll said it is readable
	})
	if err == nil {
		err = rerr
	}
	e.handle(buf, n, err)
}

// handle handles the result of one read into buf: n bytes, or rerr.
func (e *epConn) handle(buf []byte, n int, rerr error) {
	if rerr == syscall.EAGAIN || rerr == syscall.EINTR {
		return
	}
	if rerr != nil || n <= 0 {
		e.end()
		return
	}
	data := buf[:n]
	if len(e.carry) > 0 {
		e.carry = append(e.carry, data...)
		data = e.carry
	}
	rest, err := e.frames(data)
	if err != nil {
		e.end()
		return
	}
	if len(rest) == 0 {
		e.carry = e.carry[:0]
		return
	}
	e.carry = append(e.carry[:0:0], rest...)
}

// frames handles the complete frames at the start of data and returns the
// bytes of the incomplete one that follows.
func (e *epConn) frames(data []byte) ([]byte, error) {
	for {
		f, n, err := parseServerFrame(data)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return data, nil
		}
		data = data[n:]
		if err := e.frame(f); err != nil {
			return nil, err
		}
	}
}

// frame handles one WebSocket frame from the server.
func (e *epConn) frame(f serverFrame) error {
	switch f.op {
	case opText, opBinary:
		if len(e.frag) > 0 || e.fragOp != 0 {
			return errors.New("bench: new message inside a fragmented one")
		}
		if f.fin {
			e.message(f.op, f.payload)
			return nil
		}
		e.fragOp = f.op
		e.frag = append(e.frag[:0], f.payload...)
	case opContinuation:
		if e.fragOp == 0 {
			return errors.New("bench: continuation without a message")
		}
		e.frag = append(e.frag, f.payload...)
		if len(e.frag) > wsReadLimit {
			return errors.New("bench: message over the read limit")
		}
		if f.fin {
			op := e.fragOp
			e.fragOp = 0
			e.message(op, e.frag)
			e.frag = e.frag[:0]
		}
	case opPing:
		e.c.pong(f.payload)
	case opClose:
		return errors.New("bench: closed by the server")
	}
	return nil
}

// message hands a whole message to the connection's handlers.
func (e *epConn) message(op byte, payload []byte) {
	if op == opBinary {
		e.c.onBinary(payload)
	} else {
		e.c.onText(payload)
	}
}

// batched reports whether e's poller reads through io_uring.
func (e *epConn) batched() bool { return e.p.ring != nil }

// end stops reading e, once: it leaves the epoll set and the connection
// ends as the goroutine reader's would.
func (e *epConn) end() {
	e.ended.Do(func() {
		e.p.bmu.Lock()
		defer e.p.bmu.Unlock()
		e.rc.Control(func(fd uintptr) {
			syscall.EpollCtl(e.p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
		})
		e.p.remove(e)
		e.c.readEnded()
	})
}
