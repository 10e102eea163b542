package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
)

// sseStream is one Server-Sent Events stream (docs/sse.md): one session
// with one channel, written by the session's outbox. The handler goroutine
// writes the opening events itself, then hands the response to the outbox
// and waits for it to finish.
type sseStream struct {
	*session
	w  http.ResponseWriter
	rc *http.ResponseController
	ch *channelState

	// last is the cursor of the last replayed change: live frames at or
	// before it were sent by the replay and are skipped. Set before the
	// outbox is released, read only by the writer after.
	last channels.Cursor

	resumeDone func() // frees the resume slot; nil when not resuming
}

// resumeKey is who a resume is counted against: the user (sub), or for a
// token without one, its role from one client address.
func resumeKey(id *channels.Identity, r *http.Request) string {
	if id != nil && id.Sub != "" {
		return "sub:" + id.Sub
	}
	role := ""
	if id != nil {
		role = id.Role
	}
	return "addr:" + role + "@" + clientAddr(r)
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

// handleSSE serves GET /realtime/v1/sse (docs/sse.md). Errors before the
// stream starts are JSON with a 4xx status.
func (s *Server) handleSSE(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	creds := readCredentials(r)
	if creds.apiKey == "" {
		writeJSONError(w, http.StatusUnauthorized, "API key is missing")
		return
	}
	if _, err := s.verify(creds.apiKey); err != nil {
		s.log.Info("SSE refused", "remote_addr", r.RemoteAddr, "err", err)
		writeJSONError(w, http.StatusUnauthorized, auth.ConnectMessage(err))
		return
	}
	p, err := parseSSEParams(r)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(topicPrefix)+len(p.channel) > MaxTopicBytes {
		writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("channel names are limited to %d bytes", MaxTopicBytes-len(topicPrefix)))
		return
	}
	release, ok := s.admit(w, r)
	if !ok {
		return
	}
	defer release()
	binding := p.binding()
	if binding != nil && s.cfg.Changes == nil {
		writeJSONError(w, http.StatusServiceUnavailable, "postgres_changes are not available: the service has no database")
		return
	}
	if p.channel != "" && strings.EqualFold(r.URL.Query().Get("private"), "true") {
		writeJSONError(w, http.StatusForbidden, "private channels are not available over SSE")
		return
	}
	if _, ok := w.(http.Flusher); !ok {
		writeJSONError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}

	// A resume replays RLS-checked changes: admitted per identity before
	// any other work (a refused one costs a token check), and run, from
	// the subscription to the replay, in one of a few process-wide slots,
	// off the live fan-out's cores.
	var resumeDone func()
	if binding != nil && p.resume {
		var ok bool
		if resumeDone, ok = s.admitResume(w, r, creds); !ok {
			return
		}
		defer func() {
			if resumeDone != nil {
				resumeDone()
			}
		}()
	}

	st := &sseStream{w: w, rc: http.NewResponseController(w)}
	st.session = s.newSession(transportSSE, creds, encSSE, remote{addr: remoteAddr(r), version: "sse"})
	st.attach(st, st)
	st.out.hold() // the handler writes the opening events first
	defer st.end(channels.ReasonClientLeft)

	topic, name := topicPrefix+p.channel, p.channel
	if p.channel == "" {
		topic, name = fmt.Sprintf("sse:%d", st.id), ""
	}
	sp := &channelSpec{topic: topic, name: name, token: creds.token(), presenceKey: fmt.Sprintf("sse-%d", st.id), presence: p.presence}
	if binding != nil {
		sp.bindings = []json.RawMessage{binding}
	}
	ch, ref := st.openChannel(sp)
	if ref != nil {
		writeJSONError(w, http.StatusUnauthorized, ref.message)
		return
	}
	if ch == nil {
		writeJSONError(w, http.StatusServiceUnavailable, "Realtime is restarting, please standby")
		return
	}
	st.ch = ch
	// Validate and start the bindings before the stream starts, so bad
	// filters and unknown tables get a 400.
	if binding != nil {
		if err := st.activate(ch); err != nil {
			writeJSONError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if resumeDone != nil {
		st.resumeDone = func() { resumeDone(); resumeDone = nil }
	}

	// Registered only now, so that Shutdown waits for streams that have a
	// writer to finish, never for a request still being refused.
	if !s.track(st.session) {
		writeJSONError(w, http.StatusServiceUnavailable, "Realtime is restarting, please standby")
		return
	}
	defer s.forget(st.session)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	opening, last := st.opening(r, &p, binding != nil)
	if st.resumeDone != nil {
		st.resumeDone() // the slot is for the replay, not the stream
	}
	if err := st.write(opening); err != nil {
		st.out.Close(channels.ReasonClientLeft)
	}
	st.last = last // live changes up to here were in the replay
	st.out.release()

	heartbeat := time.NewTicker(s.cfg.SSEHeartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
			st.out.Close(channels.ReasonClientLeft)
			<-st.out.done // the writer must be done with w before we return
			return
		case <-st.out.done:
			return
		case <-heartbeat.C:
			st.out.Enqueue(sseHeartbeat)
		}
	}
}

// sseHeartbeat is the comment line that keeps proxies from timing out an
// idle stream.
var sseHeartbeat = channels.Frame{Data: []byte(": heartbeat\n\n")}

// admitResume takes a resume slot for the caller's identity and returns
// the function that frees it (nil for a token that does not verify: the
// stream then fails its own checks). ok is false when the request has been
// answered (429 after resumeRefusalDelay) or the client went away.
func (s *Server) admitResume(w http.ResponseWriter, r *http.Request, creds credentials) (done func(), ok bool) {
	v, err := s.verify(creds.token())
	if err != nil {
		return nil, true
	}
	done, err = s.enterResume(r.Context(), resumeKey(v.identity, r))
	if errors.Is(err, errTooManyResumes) {
		s.log.Info("SSE resume refused: too many concurrent resumes", "remote_addr", clientAddr(r))
		// Answered after a pause: a client that retries at once
		// (EventSource does, on any error) then costs a refusal a second
		// per stream instead of one per round trip (docs/sse.md "Resume").
		t := time.NewTimer(resumeRefusalDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return nil, false
		}
		w.Header().Set("Retry-After", "1")
		writeJSONError(w, http.StatusTooManyRequests, msgTooManyResumes)
		return nil, false
	}
	if err != nil {
		return nil, false // the client went away while waiting
	}
	return done, true
}

// resumeRefusalDelay is how long a resume refused for the per-identity cap
// waits before its 429.
const resumeRefusalDelay = time.Second

// opening returns the stream's first events, and the cursor of the last
// replayed change: on resume the gap notice and the replayed changes, then
// the subscription status (or a comment when no postgres_changes are
// streamed), then presence_state.
func (st *sseStream) opening(r *http.Request, p *sseParams, changes bool) (out []channels.Frame, last channels.Cursor) {
	name := st.ch.sub.Name
	if changes {
		if p.resume {
			// The client has everything up to its cursor: a change at or
			// before it that streams live again (the slot re-sends what it
			// had not confirmed when a previous process died) is skipped.
			last = p.after
			ctx, cancel := context.WithTimeout(r.Context(), st.srv.cfg.ResumeTimeout)
			// One resume replays at most a connection's outgoing budget:
			// bounded work per stream whatever the window holds.
			frames, gap, err := st.srv.cfg.Changes.Replay(ctx, st.ch.sub, p.after, st.srv.cfg.MaxQueueBytes)
			cancel()
			if err != nil {
				st.logger().Warn("SSE replay failed", "err", err)
				gap = true
			}
			if gap {
				msg := "Some changes after " + p.after.String() + " are no longer available; refetch the data"
				out = append(out, encSSE.EncodeSystem("", systemPayload("postgres_changes", "error", msg, name)))
			}
			out = append(out, frames...)
			if n := len(frames); n > 0 && last.Less(frames[n-1].Cursor) {
				last = frames[n-1].Cursor
			}

		}
		out = append(out, encSSE.EncodeSystem("", systemPayload("postgres_changes", "ok", "Subscribed to PostgreSQL", name)))
	} else {
		out = append(out, channels.Frame{Data: []byte(": connected\n\n")})
	}
	if p.presence {
		out = append(out, sseEvent("", "presence_state", st.srv.hub.PresenceState(st.ch.sub)))
	}
	return out, last
}

// write implements link: frames in order, skipping changes the replay
// already sent, then one flush, each under the write deadline.
func (st *sseStream) write(frames []channels.Frame) error {
	wrote := false
	for _, f := range frames {
		if !f.Cursor.IsZero() && !st.last.Less(f.Cursor) {
			continue // already sent by the replay
		}
		st.rc.SetWriteDeadline(time.Now().Add(st.srv.cfg.WriteTimeout))
		if _, err := st.w.Write(f.Data); err != nil {
			return err
		}
		wrote = true
	}
	if !wrote {
		return nil
	}
	return st.rc.Flush()
}

// finish implements link: on shutdown the stream's last event says so;
// the handler then returns, which ends the response.
func (st *sseStream) finish(reason channels.CloseReason, broken bool) {
	if reason == channels.ReasonServerShutdown && !broken {
		st.write([]channels.Frame{encSSE.EncodeSystem("", systemPayload("system", "ok", "Server shutting down", st.channelName()))})
	}
}

// channelName is the stream's channel name ("" before it has one).
func (st *sseStream) channelName() string {
	if st.ch == nil {
		return ""
	}
	return st.ch.sub.Name
}

// systemFrame implements transport.
func (st *sseStream) systemFrame(_ *channelState, payload []byte) channels.Frame {
	return encSSE.EncodeSystem("", payload)
}

// channelClosed implements transport: the stream is the channel, so it
// ends after a last system event with msg.
func (st *sseStream) channelClosed(ch *channelState, msg string, reason channels.CloseReason) {
	st.out.closeAfter(st.systemFrame(ch, systemPayload("system", "error", msg, ch.sub.Name)), reason)
}
