package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"
)

// sseClient is the HTTP client of every SSE stream: no redirects (the tool
// talks to the given address only), no overall timeout (streams are long).
var sseClient = &http.Client{
	Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		DisableCompression:    true,
		MaxIdleConnsPerHost:   -1,
		ResponseHeaderTimeout: 30 * time.Second,
		ForceAttemptHTTP2:     false,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// sseSub is one SSE stream; its reader goroutine records deliveries.
type sseSub struct {
	idx     int
	tracker *Tracker
	rec     *recorder
	pg      bool
	body    io.ReadCloser
	cancel  context.CancelFunc
	readyCh chan struct{}
	err     string // set before readyCh closes
	ready1  atomic.Bool
	closing atomic.Bool
	done    chan struct{}
}

// sseQuery is the query string of subscriber i.
func sseQuery(cfg *config, i int) url.Values {
	q := url.Values{}
	if cfg.dbLoad() {
		q.Set("schema", "public")
		q.Set("table", cfg.Table)
		q.Set("event", cfg.Event)
		if cfg.Filter == "user" {
			q.Set("filter", "user_id=eq."+userID(i%cfg.Users))
		}
	} else {
		q.Set("channel", cfg.channelName(i))
	}
	return q
}

// openSSE starts stream i, on node cfg.nodeFor(i), and returns once the response headers arrived;
// wait on readyCh for the subscription.
func openSSE(ctx context.Context, cfg *config, apikey, token string, i int, tr *Tracker, rec *recorder) (*sseSub, error) {
	u := cfg.endpoint(i, "/realtime/v1/sse") + "?" + sseQuery(cfg, i).Encode()
	sctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, u, nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("bench: sse request: %w", err)
	}
	req.Header.Set("apikey", apikey)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := sseClient.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("bench: sse: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("bench: sse: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	s := &sseSub{idx: i, tracker: tr, rec: rec, pg: cfg.dbLoad(), body: resp.Body, cancel: cancel, readyCh: make(chan struct{}), done: make(chan struct{})}
	go s.read()
	return s, nil
}

func (s *sseSub) ready(err string) {
	if s.ready1.CompareAndSwap(false, true) {
		s.err = err
		close(s.readyCh)
	}
}

// wait blocks until the stream is subscribed, failed, or timeout passed.
func (s *sseSub) wait(timeout time.Duration) error {
	select {
	case <-s.readyCh:
		if s.err != "" {
			return errors.New(s.err)
		}
		return nil
	case <-time.After(timeout):
		return errors.New("sse subscription timed out")
	}
}

func (s *sseSub) close() {
	s.closing.Store(true)
	s.cancel()
	s.body.Close()
}

// read parses the event stream: "event:", "data:" and "id:" lines up to a
// blank line make one event; comment lines start with ':'.
func (s *sseSub) read() {
	defer close(s.done)
	defer s.ready("stream ended")
	br := bufio.NewReaderSize(s.body, 16<<10)
	var event []byte
	var data []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A longer line: gather it whole.
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil {
			if !s.closing.Load() {
				s.rec.closes.Add(1)
			}
			return
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if len(event) > 0 || len(data) > 0 {
				s.dispatch(event, data)
			}
			event, data = event[:0], data[:0]
		case line[0] == ':':
			if !s.pg && bytes.HasPrefix(line, []byte(": connected")) {
				s.ready("")
			}
		case bytes.HasPrefix(line, []byte("event:")):
			event = append(event[:0], bytes.TrimSpace(line[6:])...)
		case bytes.HasPrefix(line, []byte("data:")):
			if len(data) > 0 {
				data = append(data, '\n')
			}
			v := line[5:]
			if len(v) > 0 && v[0] == ' ' {
				v = v[1:]
			}
			data = append(data, v...)
		}
	}
}

func (s *sseSub) dispatch(event, data []byte) {
	switch string(event) {
	case "broadcast", "postgres_changes":
		now := time.Now()
		var mk marker
		var ok bool
		if string(event) == "broadcast" {
			mk, ok = parseBroadcastPayload(data)
		} else {
			mk, ok = parseChangeData(data)
		}
		if !ok {
			s.rec.unparsed.Add(1)
			return
		}
		s.rec.receipt(s.idx, s.tracker, mk, now)
	case "system":
		st, _ := scanString(data, "status")
		if string(st) == "ok" {
			s.ready("")
		} else if !s.ready1.Load() {
			s.ready("system: " + string(data))
		}
	}
}
