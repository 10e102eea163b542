//go:build !linux

package uring

import "errors"

// Ring is io_uring's ring, which exists on Linux only.
type Ring struct{}

// Entries is the most sockets one call serves.
const Entries = 256

// ErrUnusable means the ring cannot be used.
var ErrUnusable = errors.New("io_uring is Linux only")

// New reports that there is no io_uring here.
func New() (*Ring, error) { return nil, ErrUnusable }

// Send is never called: there is no ring.
func (r *Ring) Send(fds []int, bufs [][]byte, res []int32) error { return ErrUnusable }

// Recv is never called: there is no ring.
func (r *Ring) Recv(fds []int, bufs [][]byte, res []int32) error { return ErrUnusable }

// Close does nothing.
func (r *Ring) Close() {}
