package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"
)

// connectionCap returns the --max-connections to use: the flag when set,
// else one derived from the file descriptor limit (which the Go runtime
// has already raised to its hard limit), leaving room for the listener's
// headroom, the database, log files and the runtime.
func connectionCap(flagValue int, log *slog.Logger) int {
	if flagValue > 0 {
		return flagValue
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 10000
	}
	nofile := int(min(rl.Cur, 1<<24))
	// Solve c + headroom(c) + reserve <= nofile for c.
	const reserve = 64
	c := (nofile - reserve) * 9 / 10
	for c > 16 && c+listenerHeadroom(c)+reserve > nofile {
		c--
	}
	c = max(c, 16)
	log.Info("connection cap derived from the file descriptor limit", "max_connections", c, "nofile", nofile)
	return c
}

// listenerHeadroom is how many sockets beyond the connection cap the
// listener accepts: requests refused with 429, /healthz, the admin API.
func listenerHeadroom(maxConns int) int { return max(maxConns/10, 64) }

// startMetrics serves /metrics without a token on its own listener
// (--metrics-addr), for a scraper on a private network or loopback.
func startMetrics(addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	go func() {
		log.Info("metrics listening", "addr", ln.Addr().String())
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		if err := hs.Serve(ln); err != nil {
			log.Warn("metrics server stopped", "err", err)
		}
	}()
	return nil
}
