package realtime

import (
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
)

// transport is what a session needs from the protocol that carries it:
// the few frames whose shape only that protocol knows. Everything else a
// transport does is reading requests and writing the outbox's frames.
type transport interface {
	// systemFrame frames a system message for channel ch.
	systemFrame(ch *channelState, payload []byte) channels.Frame
	// channelClosed tells the client that the server ended ch, whose
	// system error text is msg: a system message and phx_close on
	// WebSocket; on SSE, where the stream is the channel, its last event.
	channelClosed(ch *channelState, msg string, reason channels.CloseReason)
}

// session is one subscriber connection, whatever carries it: its
// credentials, its joined channels with their subscriptions, token expiry
// and refresh, postgres_changes bindings and limits. WebSocket and SSE
// each create one per connection and feed it requests; what it sends goes
// through its outbox, the connection's single writer.
type session struct {
	srv   *Server
	id    uint64
	kind  string // transportWebSocket or transportSSE
	creds credentials
	enc   channels.Encoder
	out   *outbox
	info  *channels.ConnInfo
	t     transport
	// headers are the upgrade request's x-* headers (private channel
	// policies see them); immutable.
	headers map[string]string

	mu    sync.Mutex               // guards chans
	chans map[string]*channelState // by topic; nil once the session ended
}

// channelState is one joined channel of a session. sub and joinRef are
// immutable; the other fields are guarded by session.mu.
type channelState struct {
	sub      *channels.Subscription
	joinRef  string
	ack      bool
	token    string // the token the channel's identity comes from
	expiry   *time.Timer
	presence rateWindow
	bindings []*channels.Binding // postgres_changes; nil when none
	perms    *privatePerms       // private channels only; has its own lock
}

// newSession returns a session for a connection that has passed the API
// key check. The caller sets t and out before the session is used.
func (s *Server) newSession(kind string, creds credentials, enc channels.Encoder, r remote) *session {
	ss := &session{srv: s, id: s.hub.NextID(), kind: kind, creds: creds, enc: enc, chans: make(map[string]*channelState)}
	ss.info = &channels.ConnInfo{ID: ss.id, Transport: kind, Version: r.version, RemoteAddr: r.addr, Since: time.Now()}
	return ss
}

// remote describes the client side of a connection for operators.
type remote struct {
	addr    string
	version string
}

// attach sets the session's transport and its outbox over l.
func (ss *session) attach(t transport, l link) {
	ss.t = t
	ss.out = newOutbox(ss.srv, ss.id, l)
	ss.info.QueuedBytes = ss.out.queuedBytes
	ss.info.Close = ss.out.Close
}

// logger returns the server logger with this connection's id. It is built
// on use: keeping one per connection would cost memory on every idle
// connection for the rare log line.
func (ss *session) logger() *slog.Logger { return ss.srv.log.With("conn_id", ss.id) }

// channelSpec is what a transport asks for when it opens a channel.
type channelSpec struct {
	topic, name string
	joinRef     string
	token       string // the token to act as (already chosen by the transport)
	private     bool
	self, ack   bool
	presenceKey string
	presence    bool
	bindings    []json.RawMessage // postgres_changes requests
	replay      bool              // config.broadcast.replay given
}

// refusal is why a channel could not be opened: the reason of a join
// error reply (docs/protocol.md §7.5), and for HTTP transports a status
// and message.
type refusal struct {
	reason  string
	status  int
	message string
}

// openChannel verifies the spec's token, enforces the channel limit,
// replaces a channel already joined on the same topic, and subscribes the
// new channel to the hub, its postgres_changes bindings parsed but not yet
// active (see activate). A nil channel with a nil refusal means the session
// has ended.
func (ss *session) openChannel(sp *channelSpec) (*channelState, *refusal) {
	v, err := ss.srv.verify(sp.token)
	if err != nil {
		ss.logger().Info("join refused", "topic", sp.topic, "err", err)
		return nil, &refusal{reason: auth.JoinReason(err), status: 401, message: auth.ConnectMessage(err)}
	}
	var perms *privatePerms
	if sp.private {
		var ref *refusal
		if perms, ref = ss.authorizePrivate(sp, v); ref != nil {
			return nil, ref
		}
	}
	ss.mu.Lock()
	if ss.chans == nil {
		ss.mu.Unlock()
		return nil, nil
	}
	old := ss.chans[sp.topic]
	if old == nil && len(ss.chans) >= ss.srv.limits().MaxChannelsPerClient {
		ss.mu.Unlock()
		return nil, &refusal{reason: "ChannelRateLimitReached: Too many channels", status: 429, message: "Too many channels"}
	}
	if old != nil {
		delete(ss.chans, sp.topic)
		stopChannelLocked(old)
	}
	ss.mu.Unlock()
	if old != nil {
		ss.leaveChannel(old)
		ss.t.channelClosed(old, "", channels.ReasonReplaced)
	}

	sub := &channels.Subscription{
		ID:          ss.srv.hub.NextID(),
		Topic:       sp.topic,
		Name:        sp.name,
		Private:     sp.private,
		Self:        sp.self,
		PresenceKey: sp.presenceKey,
		Writer:      ss.out,
		Encoder:     ss.enc,
		Conn:        ss.info,
	}
	sub.SetIdentity(v.identity)
	sub.SetPresence(sp.presence)
	ch := &channelState{sub: sub, joinRef: sp.joinRef, ack: sp.ack, token: v.token, perms: perms}
	applyPerms(ch)
	inspectPerms(ch)
	if sp.replay {
		sub.StartReplay()
	}
	if len(sp.bindings) > 0 {
		if ss.srv.cfg.Changes != nil {
			ch.bindings = ss.srv.cfg.Changes.Bind(sp.bindings)
		} else {
			ch.bindings = echoBindings(sp.bindings)
		}
	}

	ss.mu.Lock()
	if ss.chans == nil {
		ss.mu.Unlock()
		return nil, nil
	}
	ss.chans[sp.topic] = ch
	ch.expiry = ss.expiryTimer(ch, v.claims)
	ss.mu.Unlock()
	ss.srv.hub.Subscribe(sub)
	ss.srv.metrics.channelJoined(ss.kind)
	return ch, nil
}

// channel returns the joined channel for topic, checking that joinRef
// (when given) is the current one. stale is true for a request carrying an
// old join_ref, which is ignored.
func (ss *session) channel(topic, joinRef string) (ch *channelState, stale bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ch = ss.chans[topic]
	if ch == nil {
		return nil, false
	}
	if joinRef != "" && joinRef != ch.joinRef {
		return nil, true
	}
	return ch, false
}

// current reports whether ch is still the session's channel on its topic.
func (ss *session) current(ch *channelState) bool {
	cur, _ := ss.channel(ch.sub.Topic, ch.joinRef)
	return cur == ch
}

// leave ends the channel on topic at the client's request (joinRef, when
// given, must be the current one) and returns it, or nil when there was
// none.
func (ss *session) leave(topic, joinRef string) *channelState {
	ss.mu.Lock()
	ch := ss.chans[topic]
	if ch == nil || (joinRef != "" && joinRef != ch.joinRef) {
		ss.mu.Unlock()
		return nil
	}
	delete(ss.chans, topic)
	stopChannelLocked(ch)
	ss.mu.Unlock()
	ss.leaveChannel(ch)
	return ch
}

// closeChannel ends ch from the server side: the client is told msg (a
// system error) and the channel is closed (docs/protocol.md §7.3).
func (ss *session) closeChannel(ch *channelState, msg string, reason channels.CloseReason) {
	ss.mu.Lock()
	if ss.chans[ch.sub.Topic] != ch {
		ss.mu.Unlock()
		return
	}
	delete(ss.chans, ch.sub.Topic)
	stopChannelLocked(ch)
	ss.mu.Unlock()
	ss.leaveChannel(ch)
	ss.t.channelClosed(ch, msg, reason)
}

// stopChannelLocked stops a channel's timers. session.mu must be held.
func stopChannelLocked(ch *channelState) {
	if ch.expiry != nil {
		ch.expiry.Stop()
	}
}

// leaveChannel removes a channel's subscription from the hub and the change feed.
func (ss *session) leaveChannel(ch *channelState) {
	if ch.bindings != nil && ss.srv.cfg.Changes != nil {
		ss.srv.cfg.Changes.Deactivate(ch.sub)
	}
	ss.srv.hub.Unsubscribe(ch.sub)
	ss.srv.metrics.channelLeft(ss.kind)
}

// end closes the session's outbox with reason (unless it is closing
// already) and leaves every channel. It is called once, by the transport,
// when the connection is over.
func (ss *session) end(reason channels.CloseReason) {
	ss.out.Close(reason)
	ss.mu.Lock()
	chans := ss.chans
	ss.chans = nil
	for _, ch := range chans {
		stopChannelLocked(ch)
	}
	ss.mu.Unlock()
	for _, ch := range chans {
		ss.leaveChannel(ch)
	}
}

// expiryTimer closes ch when its token expires (docs/protocol.md §7.1).
// session.mu must be held.
func (ss *session) expiryTimer(ch *channelState, claims *auth.Claims) *time.Timer {
	return time.AfterFunc(max(time.Until(claims.Exp), 0), func() {
		secs := max(int64(time.Since(claims.Exp)/time.Second), 0)
		ss.logger().Info("channel token expired", "topic", ch.sub.Topic)
		ss.closeChannel(ch, auth.SystemMessage(&auth.ExpiredError{Seconds: secs}), channels.ReasonTokenExpired)
	})
}

// refreshToken swaps a live channel's token (docs/protocol.md §7.1): the
// new claims apply to everything delivered from then on and the channel's
// postgres_changes bindings are validated again under them. A bad token
// closes the channel with its system error. The same token, an empty one
// or an opaque key is a no-op.
func (ss *session) refreshToken(ch *channelState, tok string) {
	ss.mu.Lock()
	same := tok == ch.token
	ss.mu.Unlock()
	if tok == "" || isOpaqueKey(tok) || same {
		return
	}
	v, err := ss.srv.verify(tok)
	if err != nil {
		ss.logger().Info("access_token refused; closing channel", "topic", ch.sub.Topic, "err", err)
		ss.closeChannel(ch, auth.SystemMessage(err), channels.ReasonTokenInvalid)
		return
	}
	ss.mu.Lock()
	if ss.chans[ch.sub.Topic] != ch {
		ss.mu.Unlock()
		return
	}
	ch.token = v.token
	stopChannelLocked(ch)
	ch.expiry = ss.expiryTimer(ch, v.claims)
	ss.mu.Unlock()
	ch.sub.SetIdentity(v.identity)
	if !ss.recheckPrivate(ch, v) {
		return
	}
	if ch.bindings != nil && ss.srv.cfg.Changes != nil {
		ss.srv.cfg.Changes.Deactivate(ch.sub)
		ss.activateAsync(ch, closedChan)
	}
}

// activate validates ch's postgres_changes bindings against the database
// under its identity and starts delivery. It may block on IO. The error
// text is the client-facing system message (docs/protocol.md §4.8).
func (ss *session) activate(ch *channelState) error {
	if ss.srv.cfg.Changes == nil {
		return errNoDatabase
	}
	err := ss.srv.cfg.Changes.Activate(ch.sub, ch.bindings)
	if err != nil {
		ss.srv.cfg.Changes.Deactivate(ch.sub)
		if text := clientText(err); text != err.Error() {
			ss.logger().Warn("postgres_changes activation failed", "topic", ch.sub.Topic, "err", err)
			return systemError(text)
		}
	}
	return err
}

// Client-facing texts of activation errors whose details stay in the log
// (docs/protocol.md §7.3).
const (
	msgUnableToConnect = "Realtime was unable to connect to the project database"
	msgUnknownError    = "Unknown Error on Channel"
)

// clientText is the system message for an activation error: binding
// refusals are written for clients and pass as they are; a database
// failure becomes Supabase's text without its cause, and an internal error
// (a Go package prefix such as "channels:") the generic one. Details of
// both go to the log only.
func clientText(err error) string {
	text := err.Error()
	switch {
	case strings.HasPrefix(text, msgUnableToConnect):
		return msgUnableToConnect
	case internalPrefix(text):
		return msgUnknownError
	}
	return text
}

// internalPrefix reports whether text starts like a wrapped Go error
// ("pkg: ..."), which is never meant for clients.
func internalPrefix(text string) bool {
	pkg, _, ok := strings.Cut(text, ": ")
	if !ok || pkg == "" || len(pkg) > 20 {
		return false
	}
	for _, r := range pkg {
		if (r < 'a' || r > 'z') && r != '_' && r != '/' {
			return false
		}
	}
	return true
}

// errNoDatabase is the system message for postgres_changes without a
// configured database.
var errNoDatabase = systemError("Realtime was unable to connect to the project database")

// systemError is an error whose text is shown to clients as is.
type systemError string

func (e systemError) Error() string { return string(e) }

// activateAsync runs activate on another goroutine and, once `after` is
// closed (the join reply is out), tells the client the outcome with a
// system message (docs/protocol.md §3.5, §4.8). The returned channel is
// closed when the activation has finished.
func (ss *session) activateAsync(ch *channelState, after <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	ss.srv.wg.Add(1)
	go func() {
		defer ss.srv.wg.Done()
		err := ss.activate(ch)
		close(done)
		<-after
		if !ss.current(ch) {
			if err == nil {
				ss.srv.cfg.Changes.Deactivate(ch.sub)
			}
			return
		}
		status, msg := "ok", "Subscribed to PostgreSQL"
		if err != nil {
			status, msg = "error", err.Error()
		}
		ss.out.Enqueue(ss.t.systemFrame(ch, systemPayload("postgres_changes", status, msg, ch.sub.Name)))
	}()
	return done
}

// closedChan is an already closed channel.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// echoBindings gives each requested binding an id without interpreting it;
// used when no change feed is configured.
func echoBindings(raw []json.RawMessage) []*channels.Binding {
	out := make([]*channels.Binding, 0, len(raw))
	for _, r := range raw {
		out = append(out, &channels.Binding{ID: channels.BindingID(r), Raw: r})
	}
	return out
}
