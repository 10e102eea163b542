package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"
)

// baseDialer dials with the tool's connect timeout.
var baseDialer = &net.Dialer{Timeout: 10 * time.Second}

// dialLocal dials addr, sending a host under .localhost to the loopback
// address as browsers and curl do, so that --url http://<ref>.localhost:<port>
// targets one project of a multi-project service by its host
// (docs/projects.md "Which project a request is for").
func dialLocal(ctx context.Context, network, addr string) (net.Conn, error) {
	if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(strings.ToLower(host), ".localhost") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return baseDialer.DialContext(ctx, network, addr)
}

func init() {
	wsDialer.NetDialContext = dialLocal
	sseClient.Transport.(*http.Transport).DialContext = dialLocal
}
