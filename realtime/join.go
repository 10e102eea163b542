package realtime

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// flexBool accepts JSON booleans and the strings "true"/"false" (any case).
type flexBool bool

func (b *flexBool) UnmarshalJSON(d []byte) error {
	s := strings.ToLower(strings.Trim(string(d), `"`))
	*b = flexBool(s == "true")
	return nil
}

// joinPayload is the phx_join payload of realtime-js (protocol.md §3.2).
type joinPayload struct {
	Config struct {
		Broadcast struct {
			Self flexBool `json:"self"`
			Ack  flexBool `json:"ack"`
		} `json:"broadcast"`
		Presence struct {
			Key     json.RawMessage `json:"key"`
			Enabled flexBool        `json:"enabled"`
		} `json:"presence"`
		PostgresChanges []json.RawMessage `json:"postgres_changes"`
		Private         flexBool          `json:"private"`
	} `json:"config"`
	AccessToken string `json:"access_token"`
	UserToken   string `json:"user_token"`
}

const topicPrefix = "realtime:"

func (c *conn) handleJoin(m *phoenix.Message) {
	joinRef := m.JoinRef
	if joinRef == "" {
		joinRef = m.Ref
	}
	if !strings.HasPrefix(m.Topic, topicPrefix) {
		c.reply("", m.Ref, m.Topic, false, []byte(`{"reason":"unmatched topic"}`))
		return
	}
	name := m.Topic[len(topicPrefix):]
	if name == "" {
		c.joinError(joinRef, m, "TopicNameRequired: You must provide a topic name")
		return
	}
	var p joinPayload
	if len(m.Payload) > 0 {
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			// Like the real server: log and go on with what parsed.
			c.logger().Debug("invalid join payload", "topic", m.Topic, "err", err)
		}
	}
	if !c.joins.allow(time.Now(), int(c.srv.cfg.MaxJoinsPerSecond+0.5), time.Second) {
		c.joinError(joinRef, m, "ClientJoinRateLimitReached: Too many joins per second")
		c.logger().Warn("join rate limit reached; closing connection", "topic", m.Topic)
		c.Close(channels.ReasonRateLimit)
		return
	}
	token := p.AccessToken
	if token == "" {
		token = p.UserToken
	}
	if token == "" || strings.HasPrefix(token, "sb_") {
		token = c.apikey
	}
	v, err := c.srv.verify(token)
	if err != nil {
		c.logger().Info("join refused", "topic", m.Topic, "err", err)
		c.joinError(joinRef, m, auth.JoinReason(err))
		return
	}
	claims := v.claims
	private := bool(p.Config.Private)
	if private && !c.srv.privateAllowed(claims) {
		c.joinError(joinRef, m, "Unauthorized: You do not have permissions to read from this Channel topic: "+name)
		return
	}

	c.mu.Lock()
	if c.chans == nil {
		c.mu.Unlock()
		return // connection is closing
	}
	old := c.chans[m.Topic]
	if old == nil && len(c.chans) >= c.srv.cfg.MaxChannelsPerClient {
		c.mu.Unlock()
		c.joinError(joinRef, m, "ChannelRateLimitReached: Too many channels")
		return
	}
	if old != nil {
		delete(c.chans, m.Topic)
		c.stopChannelLocked(old)
	}
	c.mu.Unlock()
	if old != nil {
		c.leaveChannel(old)
		c.push(old.joinRef, old.joinRef, m.Topic, "phx_close", nil)
	}

	key := presenceKey(p.Config.Presence.Key)
	sub := &channels.Subscription{
		ID:          c.srv.hub.NextID(),
		Topic:       m.Topic,
		Name:        name,
		Private:     private,
		Self:        bool(p.Config.Broadcast.Self),
		PresenceKey: key,
		Writer:      c,
		Encoder:     c.enc,
		Conn:        c.info,
	}
	sub.SetIdentity(v.identity)
	sub.SetPresence(bool(p.Config.Presence.Enabled))
	ch := &channelState{sub: sub, joinRef: joinRef, ack: bool(p.Config.Broadcast.Ack), token: v.token}

	var bindings []*channels.Binding
	if c.srv.cfg.Changes != nil {
		bindings = c.srv.cfg.Changes.Bind(p.Config.PostgresChanges)
	} else {
		bindings = echoBindings(p.Config.PostgresChanges)
	}
	if len(bindings) > 0 {
		ch.pgBind = bindings
	}

	c.mu.Lock()
	if c.chans == nil {
		c.mu.Unlock()
		return
	}
	c.chans[m.Topic] = ch
	ch.expiry = c.expiryTimer(m.Topic, ch, claims)
	c.mu.Unlock()
	c.srv.hub.Subscribe(sub)
	c.srv.metrics.channelJoined()

	// Start the postgres_changes subscription before replying and give it a
	// short head start: a client that writes a row as soon as it sees
	// SUBSCRIBED then finds the subscription live. A slow database only
	// delays the reply by activationGrace; the outcome follows as a system
	// message either way.
	replied := make(chan struct{})
	if len(bindings) > 0 {
		done := c.activateChanges(m.Topic, ch, replied)
		t := time.NewTimer(activationGrace)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
	c.reply(joinRef, m.Ref, m.Topic, true, joinResponse(bindings))
	close(replied)
	if sub.PresenceEnabled() {
		c.push(joinRef, "", m.Topic, "presence_state", c.srv.hub.PresenceState(sub))
	}
}

// activationGrace is how long a join reply waits for its postgres_changes
// subscription to become live.
const activationGrace = 2 * time.Second

// closedChan is an already closed channel.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// activateChanges validates and starts a channel's postgres_changes bindings
// on another goroutine and, once `after` is closed (the join reply is out),
// tells the client the outcome (§3.5, §4.8). The returned channel is closed
// when the activation has finished.
func (c *conn) activateChanges(topic string, ch *channelState, after <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	if c.srv.cfg.Changes == nil {
		close(done)
		c.srv.wg.Add(1)
		go func() {
			defer c.srv.wg.Done()
			<-after
			c.push(ch.joinRef, "", topic, "system", systemPayload("postgres_changes", "error", "Realtime was unable to connect to the project database", ch.sub.Name))
		}()
		return done
	}
	c.srv.wg.Add(1)
	go func() {
		defer c.srv.wg.Done()
		err := c.srv.cfg.Changes.Activate(ch.sub, ch.pgBind)
		close(done)
		<-after
		if cur, _ := c.channel(topic, ch.joinRef); cur != ch {
			if err == nil {
				c.srv.cfg.Changes.Deactivate(ch.sub)
			}
			return
		}
		if err != nil {
			c.push(ch.joinRef, "", topic, "system", systemPayload("postgres_changes", "error", err.Error(), ch.sub.Name))
			return
		}
		c.push(ch.joinRef, "", topic, "system", systemPayload("postgres_changes", "ok", "Subscribed to PostgreSQL", ch.sub.Name))
	}()
	return done
}

// joinError replies to a join with an error reason.
func (c *conn) joinError(joinRef string, m *phoenix.Message, reason string) {
	c.srv.metrics.joinRefused()
	c.replyError(joinRef, m.Ref, m.Topic, reason)
}

// expiryTimer closes the channel when its token expires (protocol.md §7.1).
// c.mu must be held.
func (c *conn) expiryTimer(topic string, ch *channelState, claims *auth.Claims) *time.Timer {
	d := time.Until(claims.Exp)
	if d < 0 {
		d = 0
	}
	return time.AfterFunc(d, func() {
		secs := int64(time.Since(claims.Exp) / time.Second)
		if secs < 0 {
			secs = 0
		}
		c.logger().Info("channel token expired", "topic", topic)
		c.closeChannel(topic, ch, auth.SystemMessage(&auth.ExpiredError{Seconds: secs}))
	})
}

// presenceKey returns the configured key, or a new UUID when it is empty.
func presenceKey(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	var s string
	if len(raw) > 0 && raw[0] == '"' {
		json.Unmarshal(raw, &s)
	} else if len(raw) > 0 && string(raw) != "null" {
		s = string(raw)
	}
	if s == "" {
		return uuid.NewString()
	}
	return s
}

// identityOf converts verified claims to the hub's identity.
func identityOf(c *auth.Claims) *channels.Identity {
	return &channels.Identity{Role: c.Role, Sub: c.Sub, Claims: c.Raw, Key: c.Key(), Exp: c.Exp}
}

// echoBindings gives each requested binding an id without interpreting it;
// used when no change feed is configured.
func echoBindings(raw []json.RawMessage) []*channels.Binding {
	out := make([]*channels.Binding, 0, len(raw))
	for _, r := range raw {
		out = append(out, &channels.Binding{ID: channels.BindingID(r), Raw: r})
	}
	return out
}

// joinResponse is {"postgres_changes":[...]} echoing each binding with its id.
func joinResponse(bindings []*channels.Binding) []byte {
	b := []byte(`{"postgres_changes":[`)
	for i, bd := range bindings {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendWithID(b, bd.Raw, bd.ID)
	}
	return append(b, "]}"...)
}

// appendWithID writes the object raw with an "id" member added.
func appendWithID(b []byte, raw json.RawMessage, id int64) []byte {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil || obj == nil {
		obj = map[string]json.RawMessage{}
	}
	obj["id"] = json.RawMessage(appendInt(nil, id))
	out, _ := json.Marshal(obj)
	return append(b, out...)
}
