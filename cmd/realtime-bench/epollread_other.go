//go:build !linux

package main

import "errors"

// defaultReader is the goroutine reader off Linux.
const defaultReader = readerGo

// epConn is not used off Linux.
type epConn struct{}

// startEpollRead reports that the epoll and uring readers are Linux only.
func startEpollRead(*wsConn, bool) error {
	return errors.New("bench: the epoll and uring readers need Linux; use --reader go")
}

// batched is false off Linux.
func (*epConn) batched() bool { return false }

// end does nothing off Linux.
func (*epConn) end() {}
