//go:build !linux

package main

import "errors"

// defaultReader is the goroutine reader off Linux.
const defaultReader = readerGo

// epConn is not used off Linux.
type epConn struct{}

// startEpollRead reports that the epoll reader is Linux only.
func startEpollRead(*wsConn) error {
	return errors.New("bench: the epoll reader needs Linux; use --reader go")
}

// end does nothing off Linux.
func (*epConn) end() {}
