package main

import (
	"fmt"
	"net/url"
	"strings"
)

// maxNodes bounds the node list of --url.
const maxNodes = 64

// parseNodeURLs reads --url: one base URL of the service, or a
// comma-separated list of the base URLs of a cluster's nodes. Each must be
// an http(s) URL with a host; a trailing slash is dropped, query and
// fragment are ignored. Empty entries and repeated URLs are refused.
func parseNodeURLs(raw string) ([]*url.URL, error) {
	parts := strings.Split(raw, ",")
	if len(parts) > maxNodes {
		return nil, fmt.Errorf("--url lists %d nodes, at most %d", len(parts), maxNodes)
	}
	out := make([]*url.URL, 0, len(parts))
	seen := make(map[string]bool, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		if p == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--url entry %d (%q) must be an http(s) URL of the service, e.g. http://127.0.0.1:4000", i+1, p)
		}
		n := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: strings.TrimSuffix(u.Path, "/")}
		if seen[n.String()] {
			return nil, fmt.Errorf("--url lists %s twice", n)
		}
		seen[n.String()] = true
		out = append(out, n)
	}
	return out, nil
}

// nodeFor is the node that client k (subscriber i, or sender j) talks to:
// k mod the number of nodes, so clients are spread evenly and a message
// sent on one node usually reaches subscribers on the others.
func (c *config) nodeFor(k int) int {
	n := len(c.URLs)
	return ((k % n) + n) % n
}

// target names the service under test in the report: the node URLs,
// comma-separated.
func (c *config) target() string {
	s := make([]string, len(c.URLs))
	for i, u := range c.URLs {
		s[i] = u.String()
	}
	return strings.Join(s, ",")
}

// wsURL is the WebSocket URL of node with apikey.
func (c *config) wsURL(node int, apikey string) string {
	u := *c.URLs[c.nodeFor(node)]
	u.Scheme = "ws"
	if c.URLs[c.nodeFor(node)].Scheme == "https" {
		u.Scheme = "wss"
	}
	u.Path += "/realtime/v1/websocket"
	u.RawQuery = url.Values{"apikey": {apikey}}.Encode() + "&vsn=2.0.0"
	return u.String()
}

// endpoint is path on node.
func (c *config) endpoint(node int, path string) string {
	u := *c.URLs[c.nodeFor(node)]
	u.Path += path
	return u.String()
}
