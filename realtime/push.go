package realtime

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// handleBinaryBroadcast handles a kind-3 broadcast push (vsn 2.0.0).
func (c *conn) handleBinaryBroadcast(p *phoenix.BroadcastPush) {
	ch, stale := c.channel(p.Topic, p.JoinRef)
	if stale {
		return
	}
	if ch == nil {
		c.reply("", p.Ref, p.Topic, false, []byte(`{"reason":"unmatched topic"}`))
		return
	}
	if len(p.Payload) > c.srv.cfg.MaxPayloadBytes {
		c.payloadTooLarge(ch, p.Topic, p.Ref, len(p.Payload))
		return
	}
	if p.Encoding == phoenix.EncodingJSON && !json.Valid(p.Payload) {
		c.logger().Debug("broadcast with invalid JSON payload dropped", "topic", p.Topic)
		if ch.ack {
			c.reply(ch.joinRef, p.Ref, p.Topic, false, []byte(`{"reason":"invalid JSON payload"}`))
		}
		return
	}
	b := &channels.Broadcast{
		Event:   p.Event,
		Payload: append([]byte(nil), p.Payload...),
		Binary:  p.Encoding == phoenix.EncodingBinary,
	}
	c.srv.hub.Broadcast(ch.sub, b)
	c.srv.metrics.broadcast()
	if ch.ack {
		c.reply(ch.joinRef, p.Ref, p.Topic, true, nil)
	}
}

// handleTextBroadcast handles a JSON broadcast push: its payload object is
// forwarded to every subscriber unchanged (protocol.md §5.1).
func (c *conn) handleTextBroadcast(ch *channelState, m *phoenix.Message) {
	if !jsonObject(m.Payload) {
		c.logger().Debug("broadcast payload is not an object", "topic", m.Topic)
		if ch.ack {
			c.reply(ch.joinRef, m.Ref, m.Topic, false, []byte(`{"reason":"payload must be an object"}`))
		}
		return
	}
	var obj struct {
		Event   string          `json:"event"`
		Payload json.RawMessage `json:"payload"`
	}
	json.Unmarshal(m.Payload, &obj)
	if len(obj.Payload) > c.srv.cfg.MaxPayloadBytes {
		c.payloadTooLarge(ch, m.Topic, m.Ref, len(obj.Payload))
		return
	}
	b := &channels.Broadcast{Event: obj.Event, Payload: obj.Payload, Object: append([]byte(nil), m.Payload...)}
	c.srv.hub.Broadcast(ch.sub, b)
	c.srv.metrics.broadcast()
	if ch.ack {
		c.reply(ch.joinRef, m.Ref, m.Topic, true, nil)
	}
}

// payloadTooLarge answers an oversized broadcast: an error reply with ack,
// silence without (as the real server).
func (c *conn) payloadTooLarge(ch *channelState, topic, ref string, n int) {
	c.logger().Info("broadcast over the payload limit dropped", "topic", topic, "bytes", n, "limit", c.srv.cfg.MaxPayloadBytes)
	ch.sub.Drop(channels.DropPayloadTooLarge)
	if ch.ack {
		c.reply(ch.joinRef, ref, topic, false, []byte(`"payload_size_exceeded"`))
	}
}

// handlePresence handles track and untrack (protocol.md §6.1).
func (c *conn) handlePresence(ch *channelState, m *phoenix.Message) {
	var p struct {
		Event   string          `json:"event"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		c.reply(ch.joinRef, m.Ref, m.Topic, false, nil)
		return
	}
	c.mu.Lock()
	allowed := ch.presence.allow(time.Now(), c.srv.cfg.PresenceLimit, c.srv.cfg.PresenceWindow)
	c.mu.Unlock()
	if !allowed {
		c.logger().Info("presence rate limit reached; closing channel", "topic", m.Topic)
		ch.sub.Drop(channels.DropRateLimit)
		c.closeChannel(m.Topic, ch, "Client presence rate limit exceeded")
		return
	}
	switch strings.ToLower(p.Event) {
	case "track":
		if len(p.Payload) > c.srv.cfg.MaxPayloadBytes {
			ch.sub.Drop(channels.DropPayloadTooLarge)
			c.closeChannel(m.Topic, ch, "Track message size exceeded")
			return
		}
		if t := bytes.TrimSpace(p.Payload); len(t) > 0 && string(t) != "null" && !jsonObject(t) {
			r := phoenix.AppendJSONString([]byte(`{"reason":`), channels.ErrPresencePayload.Error())
			c.reply(ch.joinRef, m.Ref, m.Topic, false, append(r, '}'))
			return
		}
		// Reply first, so the client sees its ok before its own diff.
		c.reply(ch.joinRef, m.Ref, m.Topic, true, nil)
		if _, err := c.srv.hub.Track(ch.sub, p.Payload); err != nil {
			c.logger().Debug("track failed", "topic", m.Topic, "err", err)
			return
		}
		c.srv.metrics.presence()
	case "untrack":
		c.srv.hub.Untrack(ch.sub)
		c.srv.metrics.presence()
		c.reply(ch.joinRef, m.Ref, m.Topic, true, nil)
	default:
		c.reply(ch.joinRef, m.Ref, m.Topic, false, nil)
	}
}

// handleAccessToken swaps a live channel's token (protocol.md §7.1). Success
// sends no reply; failure closes the channel with a system error.
func (c *conn) handleAccessToken(ch *channelState, m *phoenix.Message) {
	var p struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(m.Payload, &p)
	tok := p.AccessToken
	c.mu.Lock()
	same := tok == ch.token
	c.mu.Unlock()
	if tok == "" || strings.HasPrefix(tok, "sb_") || same {
		return
	}
	v, err := c.srv.verify(tok)
	if err != nil {
		c.logger().Info("access_token refused; closing channel", "topic", m.Topic, "err", err)
		c.closeChannel(m.Topic, ch, auth.SystemMessage(err))
		return
	}
	c.mu.Lock()
	if c.chans[m.Topic] != ch {
		c.mu.Unlock()
		return
	}
	ch.token = v.token
	c.stopChannelLocked(ch)
	ch.expiry = c.expiryTimer(m.Topic, ch, v.claims)
	c.mu.Unlock()
	ch.sub.SetIdentity(v.identity)
	if ch.pgBind != nil && c.srv.cfg.Changes != nil {
		c.srv.cfg.Changes.Deactivate(ch.sub)
		c.activateChanges(m.Topic, ch, closedChan)
	}
}
