package realtime

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
)

// sseConn is one SSE stream. The handler goroutine is its only writer; hub
// fan-out only appends to the bounded queue and wakes it.
type sseConn struct {
	srv  *Server
	id   uint64
	info *channels.ConnInfo

	mu      sync.Mutex // guards q, qbytes, closed, reason
	q       []channels.Frame
	qbytes  int
	closed  bool
	reason  channels.CloseReason
	wake    chan struct{} // capacity 1
	endWith []byte        // a final system payload to send before ending, if any
}

// Enqueue implements channels.Writer without blocking. Past the byte budget
// the stream is ended as a slow consumer.
func (c *sseConn) Enqueue(f channels.Frame) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if c.qbytes+len(f.Data) > c.srv.cfg.MaxQueueBytes {
		c.closed, c.reason = true, channels.ReasonSlowConsumer
		c.mu.Unlock()
		c.srv.metrics.slowConsumer()
		c.srv.log.Warn("closing slow SSE consumer", "conn_id", c.id)
		c.signal()
		return false
	}
	c.q = append(c.q, f)
	c.qbytes += len(f.Data)
	c.mu.Unlock()
	c.signal()
	return true
}

func (c *sseConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Close ends the stream; safe from any goroutine.
func (c *sseConn) Close(r channels.CloseReason) {
	c.mu.Lock()
	if !c.closed {
		c.closed, c.reason = true, r
	}
	c.mu.Unlock()
	c.signal()
}

// closeWith ends the stream after a final system event.
func (c *sseConn) closeWith(payload []byte, r channels.CloseReason) {
	c.mu.Lock()
	if !c.closed {
		c.closed, c.reason, c.endWith = true, r, payload
	}
	c.mu.Unlock()
	c.signal()
}

func (c *sseConn) queuedBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.qbytes
}

// sseError writes a JSON error before the stream starts.
func sseError(w http.ResponseWriter, status int, msg string) {
	writeJSONError(w, status, msg)
}

// sseParams are the query parameters of GET /realtime/v1/sse.
type sseParams struct {
	channel  string
	presence bool
	schema   string
	table    string
	event    string
	filter   string
	sel      []string
	after    channels.Cursor
	resume   bool
}

func parseSSEParams(r *http.Request) (sseParams, error) {
	q := r.URL.Query()
	p := sseParams{
		channel:  q.Get("channel"),
		presence: strings.EqualFold(q.Get("presence"), "true"),
		schema:   q.Get("schema"),
		table:    q.Get("table"),
		event:    q.Get("event"),
		filter:   q.Get("filter"),
	}
	if s := q.Get("select"); s != "" {
		for _, c := range strings.Split(s, ",") {
			if c = strings.TrimSpace(c); c != "" {
				p.sel = append(p.sel, c)
			}
		}
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = q.Get("last_event_id")
	}
	if last != "" {
		cur, err := channels.ParseCursor(last)
		if err != nil {
			return p, fmt.Errorf("invalid Last-Event-ID %q", last)
		}
		p.after, p.resume = cur, true
	}
	if p.event == "" {
		p.event = "*"
	}
	switch strings.ToUpper(p.event) {
	case "*", "INSERT", "UPDATE", "DELETE":
	default:
		return p, fmt.Errorf("event must be *, INSERT, UPDATE or DELETE, not %q", p.event)
	}
	if p.channel == "" && p.schema == "" && p.table == "" {
		return p, fmt.Errorf("nothing to stream: give channel=<name> and/or schema=/table=")
	}
	return p, nil
}

// binding returns the postgres_changes request object for p, or nil.
func (p *sseParams) binding() json.RawMessage {
	if p.schema == "" && p.table == "" {
		return nil
	}
	m := map[string]any{"event": strings.ToUpper(p.event)}
	if p.schema != "" {
		m["schema"] = p.schema
	}
	if p.table != "" {
		m["table"] = p.table
	}
	if p.filter != "" {
		m["filter"] = p.filter
	}
	if p.sel != nil {
		m["select"] = p.sel
	}
	raw, _ := json.Marshal(m)
	return raw
}

// handleSSE serves GET /realtime/v1/sse (docs/sse.md).
func (s *Server) handleSSE(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	q := r.URL.Query()
	key := r.Header.Get("apikey")
	if key == "" {
		key = r.Header.Get("x-api-key")
	}
	if key == "" {
		key = q.Get("apikey")
	}
	if strings.TrimSpace(key) == "" {
		sseError(w, http.StatusUnauthorized, "API key is missing")
		return
	}
	if _, err := s.verify(key); err != nil {
		s.log.Info("SSE refused", "remote_addr", r.RemoteAddr, "err", err)
		sseError(w, http.StatusUnauthorized, auth.ConnectMessage(err))
		return
	}
	token := ""
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		token = strings.TrimSpace(a[7:])
	}
	if token == "" {
		token = q.Get("access_token")
	}
	if token == "" || strings.HasPrefix(token, "sb_") {
		token = key
	}
	v, err := s.verify(token)
	if err != nil {
		s.log.Info("SSE refused", "remote_addr", r.RemoteAddr, "err", err)
		sseError(w, http.StatusUnauthorized, auth.ConnectMessage(err))
		return
	}
	p, err := parseSSEParams(r)
	if err != nil {
		sseError(w, http.StatusBadRequest, err.Error())
		return
	}
	binding := p.binding()
	if binding != nil && s.cfg.Changes == nil {
		sseError(w, http.StatusServiceUnavailable, "postgres_changes are not available: the service has no database")
		return
	}
	if p.channel != "" && strings.EqualFold(q.Get("private"), "true") {
		sseError(w, http.StatusForbidden, "private channels are not available over SSE")
		return
	}
	if _, ok := w.(http.Flusher); !ok {
		sseError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}

	c := &sseConn{srv: s, id: s.hub.NextID(), wake: make(chan struct{}, 1)}
	c.info = &channels.ConnInfo{ID: c.id, Transport: "sse", Version: "sse", RemoteAddr: remoteAddr(r), Since: time.Now(), QueuedBytes: c.queuedBytes, Close: c.Close}
	topic, name := "realtime:"+p.channel, p.channel
	if p.channel == "" {
		topic, name = fmt.Sprintf("sse:%d", c.id), ""
	}
	sub := &channels.Subscription{ID: c.id, Topic: topic, Name: name, Writer: c, Encoder: encSSE, Conn: c.info, PresenceKey: fmt.Sprintf("sse-%d", c.id)}
	claims := v.claims
	sub.SetIdentity(v.identity)
	sub.SetPresence(p.presence)

	// Validate and register the bindings before the stream starts, so bad
	// filters and unknown tables get a 400.
	if binding != nil {
		bs := s.cfg.Changes.Bind([]json.RawMessage{binding})
		if err := s.cfg.Changes.Activate(sub, bs); err != nil {
			s.cfg.Changes.Deactivate(sub)
			sseError(w, http.StatusBadRequest, err.Error())
			return
		}
		defer s.cfg.Changes.Deactivate(sub)
	}
	if !s.trackSSE(c) {
		sseError(w, http.StatusServiceUnavailable, "Realtime is restarting, please standby")
		return
	}
	defer s.forgetSSE(c)
	s.hub.Subscribe(sub)
	defer s.hub.Unsubscribe(sub)
	s.metrics.connections.Add(1)
	defer s.metrics.connections.Add(-1)

	expiry := time.AfterFunc(time.Until(claims.Exp), func() {
		secs := int64(time.Since(claims.Exp) / time.Second)
		c.closeWith(systemPayload("system", "error", auth.SystemMessage(&auth.ExpiredError{Seconds: max(secs, 0)}), name), channels.ReasonTokenExpired)
	})
	defer expiry.Stop()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	write := func(data []byte) error {
		rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := w.Write(data); err != nil {
			return err
		}
		return rc.Flush()
	}

	// Opening events: resume gap notice, replayed changes, status.
	var last channels.Cursor
	if binding != nil {
		if p.resume {
			frames, gap, err := s.cfg.Changes.Replay(r.Context(), sub, p.after)
			if err != nil {
				s.log.Warn("SSE replay failed", "conn_id", c.id, "err", err)
				gap = true
			}
			if gap {
				msg := "Some changes after " + p.after.String() + " are no longer available; refetch the data"
				if write(encSSE.EncodeSystem("", systemPayload("postgres_changes", "error", msg, name)).Data) != nil {
					return
				}
			}
			for _, f := range frames {
				if write(f.Data) != nil {
					return
				}
				last = f.Cursor
			}
		}
		if write(encSSE.EncodeSystem("", systemPayload("postgres_changes", "ok", "Subscribed to PostgreSQL", name)).Data) != nil {
			return
		}
	} else if write([]byte(": connected\n\n")) != nil {
		return
	}
	if p.presence {
		if write(sseEvent("", "presence_state", s.hub.PresenceState(sub)).Data) != nil {
			return
		}
	}

	heartbeat := time.NewTicker(s.cfg.SSEHeartbeat)
	defer heartbeat.Stop()
	var batch []channels.Frame
	for {
		select {
		case <-r.Context().Done():
			return
		case <-heartbeat.C:
			if write([]byte(": heartbeat\n\n")) != nil {
				return
			}
			continue
		case <-c.wake:
		}
		c.mu.Lock()
		batch, c.q = c.q, batch[:0]
		closed, reason, endWith := c.closed, c.reason, c.endWith
		c.mu.Unlock()
		if reason == channels.ReasonSlowConsumer && closed {
			return
		}
		n := 0
		for i, f := range batch {
			n += len(f.Data)
			batch[i] = channels.Frame{}
			if !f.Cursor.IsZero() && !last.Less(f.Cursor) {
				continue // already sent by the replay
			}
			rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			if _, err := w.Write(f.Data); err != nil {
				return
			}
		}
		if len(batch) > 0 && rc.Flush() != nil {
			return
		}
		c.mu.Lock()
		c.qbytes -= n
		c.mu.Unlock()
		if closed {
			if endWith != nil {
				write(encSSE.EncodeSystem("", endWith).Data)
			}
			return
		}
	}
}

// trackSSE registers an SSE stream for shutdown and the inspector.
func (s *Server) trackSSE(c *sseConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	s.sse[c.id] = c
	return true
}

func (s *Server) forgetSSE(c *sseConn) {
	s.mu.Lock()
	delete(s.sse, c.id)
	s.mu.Unlock()
}
