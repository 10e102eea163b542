package pglitebridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
)

// ListenUnix serves virtual connections on a Unix socket in a new private
// directory (mode 0700, so only this user can connect) and returns a
// PostgreSQL URL for it, for components that take a connection string
// rather than a DialFunc. Each accepted connection is one virtual
// connection; one that finds no page within DialWait is closed. Close stops
// the listener and removes the directory.
func (b *Bridge) ListenUnix() (string, error) {
	dir, err := os.MkdirTemp("", "realtime-pglite-")
	if err != nil {
		return "", fmt.Errorf("pglitebridge: socket directory: %w", err)
	}
	ln, err := net.Listen("unix", filepath.Join(dir, ".s.PGSQL.5432"))
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("pglitebridge: listen: %w", err)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		ln.Close()
		os.RemoveAll(dir)
		return "", ErrClosed
	}
	b.unix = append(b.unix, ln)
	b.mu.Unlock()
	go b.acceptUnix(ln, dir)
	q := url.Values{"host": {dir}, "port": {"5432"}, "sslmode": {"disable"}}
	return "postgres://postgres@/postgres?" + q.Encode(), nil
}

func (b *Bridge) acceptUnix(ln net.Listener, dir string) {
	defer os.RemoveAll(dir)
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				b.log.Warn("pglite bridge socket stopped", "err", err)
			}
			return
		}
		go b.proxy(c)
	}
}

// proxy joins a socket connection to a new virtual connection.
func (b *Bridge) proxy(c net.Conn) {
	defer c.Close()
	v, err := b.Dial(context.Background(), "", "")
	if err != nil {
		b.log.Debug("pglite bridge socket connection refused", "err", err)
		return
	}
	defer v.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(c, v)
		c.Close()
	}()
	io.Copy(v, c)
	v.Close()
	wg.Wait()
}
