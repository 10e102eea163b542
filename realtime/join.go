package realtime

import (
	"bytes"
	"encoding/json"
	"strconv"
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

// joinPayload is the phx_join payload of realtime-js (docs/protocol.md §3.2).
type joinPayload struct {
	Config struct {
		Broadcast struct {
			Self flexBool `json:"self"`
			Ack  flexBool `json:"ack"`
			// Replay is {since, limit} (docs/protocol.md §9.4).
			Replay json.RawMessage `json:"replay"`
			// ReplicationReady asks for the replication-ready system event.
			ReplicationReady flexBool `json:"replication_ready"`
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

// reasonPrivateOnly refuses a public join on a private_only project
// (docs/protocol.md §7.5).
const reasonPrivateOnly = "PrivateOnly: This project only allows private channels"

// handleJoin answers phx_join (docs/protocol.md §3): the session opens the
// channel; the reply waits briefly for its postgres_changes subscription to
// go live, then presence_state follows when presence is on.
func (c *wsConn) handleJoin(m *phoenix.Message) {
	joinRef := m.JoinRef
	if joinRef == "" {
		joinRef = m.Ref
	}
	if !strings.HasPrefix(m.Topic, topicPrefix) {
		c.reply("", m.Ref, m.Topic, false, []byte(`{"reason":"unmatched topic"}`))
		return
	}
	if len(m.Topic) > MaxTopicBytes {
		// The reply names the topic as sent (the client matches on it);
		// nothing else keeps it.
		c.logger().Info("join refused: topic too long", "bytes", len(m.Topic), "limit", MaxTopicBytes)
		c.joinError(joinRef, m, reasonTopicTooLong)
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
	// A join past the channel limit is refused as such without taking a
	// join token.
	c.mu.Lock()
	full := c.chans != nil && c.chans[m.Topic] == nil && len(c.chans) >= c.srv.limits().MaxChannelsPerClient
	c.mu.Unlock()
	if full {
		c.joinError(joinRef, m, "ChannelRateLimitReached: Too many channels")
		return
	}
	// The project's join rate (docs/projects.md "Limits"), then the
	// connection's bucket; either refusal closes the socket.
	burst := max(c.srv.limits().MaxChannelsPerClient, int(c.srv.limits().MaxJoinsPerSecond))
	if !c.srv.allowProjectJoin() || !c.joins.allow(time.Now(), c.srv.limits().MaxJoinsPerSecond, burst) {
		c.joinError(joinRef, m, reasonTooManyJoins)
		c.logger().Warn("join rate limit reached; closing connection", "topic", m.Topic)
		c.out.Close(channels.ReasonRateLimit)
		return
	}
	rp, why := parseReplay(p.Config.Broadcast.Replay)
	if rp != nil && !p.Config.Private {
		why = replayPublic
	}
	if why != "" {
		c.joinError(joinRef, m, why)
		return
	}
	if c.srv.cfg.PrivateOnly && !bool(p.Config.Private) {
		c.joinError(joinRef, m, reasonPrivateOnly)
		return
	}
	tok := p.AccessToken
	if tok == "" {
		tok = p.UserToken
	}
	ch, ref := c.openChannel(&channelSpec{
		topic:       m.Topic,
		name:        name,
		joinRef:     joinRef,
		token:       c.creds.withJoinToken(tok).token(),
		private:     bool(p.Config.Private),
		self:        bool(p.Config.Broadcast.Self),
		ack:         bool(p.Config.Broadcast.Ack),
		presenceKey: presenceKey(p.Config.Presence.Key),
		presence:    bool(p.Config.Presence.Enabled),
		bindings:    p.Config.PostgresChanges,
		replay:      rp != nil,
	})
	if ref != nil {
		c.joinError(joinRef, m, ref.reason)
		return
	}
	if ch == nil {
		return // the connection is closing
	}
	var sendReplay func()
	if rp != nil {
		if ch.sub.BroadcastMuted() {
			c.leave(m.Topic, joinRef)
			c.joinError(joinRef, m, unauthorizedRead(name))
			return
		}
		// Read before the reply; queued right after it (docs/protocol.md §3.5).
		var why string
		if sendReplay, why = c.readReplay(ch, rp); why != "" {
			c.leave(m.Topic, joinRef)
			c.joinError(joinRef, m, why)
			return
		}
	}

	// Start the postgres_changes subscription before replying and give it a
	// short head start: a client that writes a row as soon as it sees
	// SUBSCRIBED then finds the subscription live. A slow database only
	// delays the reply by activationGrace; the outcome follows as a system
	// message either way.
	replied := make(chan struct{})
	if len(ch.bindings) > 0 {
		done := c.activateAsync(ch, replied)
		t := time.NewTimer(activationGrace)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
	c.reply(joinRef, m.Ref, m.Topic, true, joinResponse(ch.bindings))
	close(replied)
	if sendReplay != nil {
		sendReplay()
	}
	if p.Config.Broadcast.ReplicationReady {
		c.announceReplicationReady(ch)
	}
	if ch.sub.PresenceEnabled() {
		c.push(joinRef, "", m.Topic, "presence_state", c.srv.hub.PresenceState(ch.sub))
	}
}

// activationGrace is how long a join reply waits for its postgres_changes
// subscription to become live.
const activationGrace = 2 * time.Second

// joinError replies to a join with an error reason.
func (c *wsConn) joinError(joinRef string, m *phoenix.Message, reason string) {
	c.srv.metrics.joinRefused()
	c.replyError(joinRef, m.Ref, m.Topic, reason)
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
	obj["id"] = json.RawMessage(strconv.FormatInt(id, 10))
	out, _ := json.Marshal(obj)
	return append(b, out...)
}
