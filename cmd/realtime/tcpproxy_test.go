package main

import (
	"io"
	"net"
	"sync"
	"testing"
)

// tcpProxy forwards the connections it accepts to one target address,
// both ways, until cut: a test's stand-in for a network path that can
// break and heal.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex // guards cut, conns
	isCut bool
	conns map[net.Conn]struct{} // both ends of every live forwarding
}

// startProxy listens on a free loopback port and forwards to target until
// the test ends.
func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

// addr is where the proxy listens.
func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

// cut closes every live connection and refuses new ones (they are
// accepted and closed at once) until restore.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	p.isCut = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	p.mu.Unlock()
}

// restore forwards new connections again.
func (p *tcpProxy) restore() {
	p.mu.Lock()
	p.isCut = false
	p.mu.Unlock()
}

func (p *tcpProxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return // closed at cleanup
		}
		go p.forward(in)
	}
}

// forward dials the target for in and copies both ways until either side
// closes or the proxy is cut.
func (p *tcpProxy) forward(in net.Conn) {
	p.mu.Lock()
	refused := p.isCut
	p.mu.Unlock()
	if refused {
		in.Close()
		return
	}
	out, err := net.Dial("tcp", p.target)
	if err != nil {
		in.Close()
		return
	}
	p.mu.Lock()
	if p.isCut { // cut while dialling
		p.mu.Unlock()
		in.Close()
		out.Close()
		return
	}
	p.conns[in], p.conns[out] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	in.Close()
	out.Close()
	p.mu.Lock()
	delete(p.conns, in)
	delete(p.conns, out)
	p.mu.Unlock()
}
