package uring

import (
	"bytes"
	"fmt"
	"syscall"
	"testing"
)

// socketPairs returns n connected non-blocking stream socket pairs, closed
// when the test ends.
func socketPairs(t *testing.T, n int) (a, b []int) {
	t.Helper()
	for range n {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]) })
		a, b = append(a, fds[0]), append(b, fds[1])
	}
	return a, b
}

func newRing(t *testing.T) *Ring {
	t.Helper()
	r, err := New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// Every socket gets its own bytes in one call, and the reads of one call
// return them; more calls than the ring holds reuse it.
func TestSendRecvManySockets(t *testing.T) {
	r := newRing(t)
	a, b := socketPairs(t, Entries)
	for round := range 3 {
		bufs := make([][]byte, len(a))
		for i := range bufs {
			bufs[i] = fmt.Appendf(nil, "round %d socket %d", round, i)
		}
		res := make([]int32, len(a))
		if err := r.Send(a, bufs, res); err != nil {
			t.Fatal(err)
		}
		for i, n := range res {
			if int(n) != len(bufs[i]) {
				t.Fatalf("round %d: send %d: %d, want %d", round, i, n, len(bufs[i]))
			}
		}
		in := make([][]byte, len(b))
		for i := range in {
			in[i] = make([]byte, 64)
		}
		if err := r.Recv(b, in, res); err != nil {
			t.Fatal(err)
		}
		for i, n := range res {
			if n < 0 || !bytes.Equal(in[i][:n], bufs[i]) {
				t.Fatalf("round %d: recv %d: %d %q, want %q", round, i, n, in[i][:max(n, 0)], bufs[i])
			}
		}
	}
}

// A full socket is not waited for: its send reports EAGAIN or a short
// count, the other sockets' sends are made, and an empty socket's receive
// reports EAGAIN.
func TestFullSocketDoesNotWait(t *testing.T) {
	r := newRing(t)
	a, b := socketPairs(t, 2)
	if err := syscall.SetsockoptInt(a[0], syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 1<<20)
	res := make([]int32, 2)
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("socket never filled")
		}
		if err := r.Send(a[:1], [][]byte{big}, res[:1]); err != nil {
			t.Fatal(err)
		}
		if res[0] == -int32(syscall.EAGAIN) {
			break
		}
		if res[0] <= 0 {
			t.Fatalf("send to a filling socket: %d", res[0])
		}
	}
	if err := r.Send(a, [][]byte{[]byte("more"), []byte("hello")}, res); err != nil {
		t.Fatal(err)
	}
	if res[0] != -int32(syscall.EAGAIN) || res[1] != 5 {
		t.Fatalf("results %v, want [-EAGAIN 5]", res)
	}
	in := [][]byte{make([]byte, 16), make([]byte, 16)}
	if err := r.Recv([]int{b[1], b[1]}, in, res); err != nil {
		t.Fatal(err)
	}
	if res[0] != 5 || string(in[0][:5]) != "hello" || res[1] != -int32(syscall.EAGAIN) {
		t.Fatalf("recv results %v %q, want [5 -EAGAIN] hello", res, in[0][:max(res[0], 0)])
	}
}

// A closed peer is an error in the result, not a signal, and a closed
// stream reads as 0.
func TestClosedPeer(t *testing.T) {
	r := newRing(t)
	a, b := socketPairs(t, 2)
	syscall.Close(b[0])
	syscall.Shutdown(a[1], syscall.SHUT_WR)
	res := make([]int32, 1)
	if err := r.Send(a[:1], [][]byte{[]byte("x")}, res); err != nil {
		t.Fatal(err)
	}
	if res[0] != -int32(syscall.EPIPE) {
		t.Fatalf("send to a closed peer: %d, want -EPIPE", res[0])
	}
	if err := r.Recv(b[1:], [][]byte{make([]byte, 8)}, res); err != nil {
		t.Fatal(err)
	}
	if res[0] != 0 {
		t.Fatalf("recv at end of stream: %d, want 0", res[0])
	}
}
