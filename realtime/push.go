package realtime

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// handleBinaryBroadcast handles a kind-3 broadcast push (vsn 2.0.0).
func (c *wsConn) handleBinaryBroadcast(p *phoenix.BroadcastPush) {
	ch, stale := c.channel(p.Topic, p.JoinRef)
	if stale {
		return
	}
	if ch == nil {
		c.reply("", p.Ref, p.Topic, false, []byte(`{"reason":"unmatched topic"}`))
		return
	}
	if !c.canWrite(ch, "broadcast") {
		return // dropped without a reply, even with ack (docs/protocol.md §9.2)
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
	if pr := persistFromMeta(p.Meta); pr.on {
		why := persistErrPublic
		if ch.perms != nil {
			why = c.srv.store(ch.sub.Name, p.Event, b.Payload, b.Binary, pr)
		}
		if why != "" {
			r := phoenix.AppendJSONString([]byte(`{"reason":`), why)
			c.reply(ch.joinRef, p.Ref, p.Topic, false, append(r, '}'))
			return
		}
	}
	c.srv.hub.Broadcast(ch.sub, b)
	c.srv.metrics.broadcast()
	if ch.ack {
		c.reply(ch.joinRef, p.Ref, p.Topic, true, nil)
	}
}

// handleTextBroadcast handles a JSON broadcast push: its payload object is
// forwarded to every subscriber unchanged (docs/protocol.md §5.1).
func (c *wsConn) handleTextBroadcast(ch *channelState, m *phoenix.Message) {
	if !c.canWrite(ch, "broadcast") {
		return // dropped without a reply, even with ack (docs/protocol.md §9.2)
	}
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
	b := &channels.Broadcast{Event: obj.Event, Payload: obj.Payload, Verbatim: append([]byte(nil), m.Payload...)}
	c.srv.hub.Broadcast(ch.sub, b)
	c.srv.metrics.broadcast()
	if ch.ack {
		c.reply(ch.joinRef, m.Ref, m.Topic, true, nil)
	}
}

// payloadTooLarge answers an oversized broadcast: an error reply with ack,
// silence without (as the real server).
func (c *wsConn) payloadTooLarge(ch *channelState, topic, ref string, n int) {
	c.logger().Info("broadcast over the payload limit dropped", "topic", topic, "bytes", n, "limit", c.srv.cfg.MaxPayloadBytes)
	ch.sub.Drop(channels.DropPayloadTooLarge)
	if ch.ack {
		c.reply(ch.joinRef, ref, topic, false, []byte(`"payload_size_exceeded"`))
	}
}

// handlePresence handles track and untrack (docs/protocol.md §6.1).
func (c *wsConn) handlePresence(ch *channelState, m *phoenix.Message) {
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
		c.closeChannel(ch, "Client presence rate limit exceeded", channels.ReasonRateLimit)
		return
	}
	switch strings.ToLower(p.Event) {
	case "track":
		if len(p.Payload) > c.srv.cfg.MaxPayloadBytes {
			ch.sub.Drop(channels.DropPayloadTooLarge)
			c.closeChannel(ch, "Track message size exceeded", channels.ReasonProtocol)
			return
		}
		if t := bytes.TrimSpace(p.Payload); len(t) > 0 && string(t) != "null" && !jsonObject(t) {
			r := phoenix.AppendJSONString([]byte(`{"reason":`), channels.ErrPresencePayload.Error())
			c.reply(ch.joinRef, m.Ref, m.Topic, false, append(r, '}'))
			return
		}
		if !c.canWrite(ch, "presence") {
			c.reply(ch.joinRef, m.Ref, m.Topic, false, nil)
			return
		}
		// Reply first, so the client sees its ok before its own diff.
		c.reply(ch.joinRef, m.Ref, m.Topic, true, nil)
		if _, err := c.srv.hub.Track(ch.sub, p.Payload); err != nil {
			c.logger().Debug("track failed", "topic", m.Topic, "err", err)
			return
		}
		c.afterTrack(ch)
		c.srv.metrics.presence()
	case "untrack":
		c.srv.hub.Untrack(ch.sub)
		c.srv.metrics.presence()
		c.reply(ch.joinRef, m.Ref, m.Topic, true, nil)
	default:
		c.reply(ch.joinRef, m.Ref, m.Topic, false, nil)
	}
}
