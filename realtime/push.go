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
	if len(p.Payload) > c.srv.limits().MaxPayloadBytes {
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
	if !c.eventsWithinLimit(ch, p.Topic) {
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

// handleBinaryPush handles a Phoenix kind-0 push (docs/protocol.md §1.3):
// on a joined channel it is a broadcast whose user event is the push's
// event and whose payload is the raw bytes, delivered as a kind-4 frame
// with binary encoding. Phoenix's client waits for a reply to every push,
// so each one gets one. Events the protocol reserves cannot carry bytes
// and are refused with a reply.
func (c *wsConn) handleBinaryPush(p *phoenix.Push) {
	ch, stale := c.channel(p.Topic, p.JoinRef)
	if stale {
		return
	}
	if ch == nil {
		c.reply("", p.Ref, p.Topic, false, []byte(`{"reason":"unmatched topic"}`))
		return
	}
	switch p.Event {
	case "phx_join", "phx_leave", "heartbeat", "presence", "access_token":
		c.replyError(ch.joinRef, p.Ref, p.Topic, "binary payloads are not supported for "+p.Event)
		return
	}
	if len(p.Payload) > c.srv.limits().MaxPayloadBytes {
		c.logger().Info("binary push over the payload limit dropped", "topic", p.Topic, "bytes", len(p.Payload), "limit", c.srv.limits().MaxPayloadBytes)
		ch.sub.Drop(channels.DropPayloadTooLarge)
		c.reply(ch.joinRef, p.Ref, p.Topic, false, []byte(`"payload_size_exceeded"`))
		return
	}
	c.srv.hub.Broadcast(ch.sub, &channels.Broadcast{Event: p.Event, Payload: append([]byte(nil), p.Payload...), Binary: true})
	c.srv.metrics.broadcast()
	c.reply(ch.joinRef, p.Ref, p.Topic, true, nil)
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
	if len(obj.Payload) > c.srv.limits().MaxPayloadBytes {
		c.payloadTooLarge(ch, m.Topic, m.Ref, len(obj.Payload))
		return
	}
	if !c.eventsWithinLimit(ch, m.Topic) {
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
	c.logger().Info("broadcast over the payload limit dropped", "topic", topic, "bytes", n, "limit", c.srv.limits().MaxPayloadBytes)
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
	allowed := ch.presence.allow(time.Now(), c.srv.limits().PresenceLimit, c.srv.limits().PresenceWindow)
	c.mu.Unlock()
	if !allowed {
		c.logger().Info("presence rate limit reached; closing channel", "topic", m.Topic)
		ch.sub.Drop(channels.DropRateLimit)
		c.closeChannel(ch, "Client presence rate limit exceeded", channels.ReasonRateLimit)
		return
	}
	if !c.srv.allowPresenceEvent() {
		c.logger().Info("project presence rate limit reached; closing channel", "topic", m.Topic)
		ch.sub.Drop(channels.DropRateLimit)
		c.srv.metrics.limitHit()
		c.closeChannel(ch, msgTooManyPresence, channels.ReasonRateLimit)
		return
	}
	switch strings.ToLower(p.Event) {
	case "track":
		c.track(ch, m, p.Payload)
	case "untrack":
		c.srv.hub.Untrack(ch.sub)
		c.srv.metrics.presence()
		c.reply(ch.joinRef, m.Ref, m.Topic, true, nil)
	default:
		c.reply(ch.joinRef, m.Ref, m.Topic, false, nil)
	}
}

// track handles a presence track of payload on ch (docs/protocol.md §6.1):
// size checks, write permission, the presence caps, then the ok reply and
// the diff.
func (c *wsConn) track(ch *channelState, m *phoenix.Message, payload json.RawMessage) {
	if len(payload) > c.srv.limits().MaxPayloadBytes {
		ch.sub.Drop(channels.DropPayloadTooLarge)
		c.closeChannel(ch, "Track message size exceeded", channels.ReasonProtocol)
		return
	}
	// Presence caps (docs/protocol.md §6.1): one member within the payload
	// limit and 64 KiB; the whole channel within 1 MiB and an eighth of
	// the outgoing budget, so its presence_state never trips a joiner's
	// slow-consumer limit.
	lim := channels.PresenceLimits{
		MetaBytes:    c.presenceMetaBytes(),
		ChannelBytes: min(c.srv.cfg.MaxQueueBytes/8, channels.DefaultPresenceChannelBytes),
	}
	// Refused before any JSON work when even its bytes other than
	// whitespace exceed the member cap (its compact form can only be
	// longer).
	if nonSpaceLen(payload) > lim.MetaBytes {
		c.refuseBigTrack(ch, m.Topic, len(payload), lim.MetaBytes)
		return
	}
	if t := bytes.TrimSpace(payload); len(t) > 0 && string(t) != "null" && !jsonObject(t) {
		r := phoenix.AppendJSONString([]byte(`{"reason":`), channels.ErrPresencePayload.Error())
		c.reply(ch.joinRef, m.Ref, m.Topic, false, append(r, '}'))
		return
	}
	if !c.canWrite(ch, "presence") {
		c.reply(ch.joinRef, m.Ref, m.Topic, false, nil)
		return
	}
	// The ok reply is queued before the track's own diff is published.
	_, err := c.srv.hub.TrackWithin(ch.sub, payload, lim, func() { c.reply(ch.joinRef, m.Ref, m.Topic, true, nil) })
	switch {
	case err == channels.ErrPresenceTooLarge: // sentinels, returned unwrapped
		c.refuseBigTrack(ch, m.Topic, len(payload), lim.MetaBytes)
		return
	case err == channels.ErrPresenceMembers, err == channels.ErrPresenceChannelBytes:
		c.logger().Info("presence track refused: channel presence full", "topic", m.Topic, "err", err)
		c.replyError(ch.joinRef, m.Ref, m.Topic, err.Error())
		return
	case err != nil:
		c.logger().Debug("track failed", "topic", m.Topic, "err", err)
		c.reply(ch.joinRef, m.Ref, m.Topic, false, nil)
		return
	}
	c.afterTrack(ch)
	c.srv.metrics.presence()
}

// refuseBigTrack closes ch for a presence track over the member cap.
// presenceMetaBytes is the cap on one presence member's payload.
func (c *wsConn) presenceMetaBytes() int {
	return min(c.srv.limits().MaxPayloadBytes, channels.DefaultPresenceMetaBytes)
}

// presenceEnvelopeBytes bounds what a presence push carries besides the
// member's payload and the topic: refs, event, the push's own keys.
const presenceEnvelopeBytes = 1024

// refuseBigPresenceFrame refuses a presence push whose frame alone shows
// it is over the member cap, before any JSON decoding: a frame of a few
// hundred KiB costs milliseconds per decode, several decodes per track,
// and a burst of them delayed every client (docs/protocol.md §6.1). It
// reports whether it handled the frame; h is the frame's header
// (phoenix.PeekHeader).
func (c *wsConn) refuseBigPresenceFrame(h *phoenix.Message, data []byte) bool {
	limit := c.presenceMetaBytes()
	if nonSpaceLen(data) <= limit+len(h.Topic)+presenceEnvelopeBytes {
		return false
	}
	ch, stale := c.channel(h.Topic, h.JoinRef)
	switch {
	case stale:
		c.logger().Debug("push with a stale join_ref ignored", "topic", h.Topic)
	case ch == nil:
		c.reply("", h.Ref, h.Topic, false, []byte(`{"reason":"unmatched topic"}`))
	default:
		c.refuseBigTrack(ch, h.Topic, len(data), limit)
	}
	return true
}

func (c *wsConn) refuseBigTrack(ch *channelState, topic string, size, limit int) {
	c.logger().Info("presence track over the member limit; closing channel", "topic", topic, "bytes", size, "limit", limit)
	ch.sub.Drop(channels.DropPayloadTooLarge)
	c.closeChannel(ch, channels.ErrPresenceTooLarge.Error(), channels.ReasonProtocol)
}

// nonSpaceLen counts the bytes of b that are not JSON whitespace: a lower
// bound on the length of b's compact form.
func nonSpaceLen(b []byte) int {
	n := 0
	for _, x := range b {
		if x != ' ' && x != '\t' && x != '\n' && x != '\r' {
			n++
		}
	}
	return n
}

// eventsWithinLimit counts a client broadcast against the server-wide
// events/s limit; over it the sending channel gets the system error
// "Too many messages per second" and is closed (docs/protocol.md §7.6).
func (c *wsConn) eventsWithinLimit(ch *channelState, topic string) bool {
	if c.srv.allowEvents(1) {
		return true
	}
	c.logger().Info("events per second limit reached; closing channel", "topic", topic)
	ch.sub.Drop(channels.DropRateLimit)
	c.srv.metrics.limitHit()
	c.closeChannel(ch, msgTooManyMessages, channels.ReasonRateLimit)
	return false
}
