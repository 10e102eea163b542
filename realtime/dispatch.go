package realtime

import (
	"bytes"
	"encoding/json"

	"github.com/gorilla/websocket"

	"github.com/openrealtime/realtime/realtime/phoenix"
)

// handleFrame dispatches one inbound WebSocket message. Bad frames are
// logged and dropped; they never close the connection. heavy reports that
// handling it grew the stack (a join or a token swap).
func (c *wsConn) handleFrame(mt int, data []byte) (heavy bool) {
	defer func() {
		if r := recover(); r != nil {
			c.logger().Error("panic while handling a frame", "panic", r)
		}
	}()
	if mt == websocket.BinaryMessage {
		if c.v != phoenix.V2 {
			c.logger().Debug("binary frame on a vsn 1.0.0 connection dropped")
			return
		}
		if len(data) > 0 && data[0] == phoenix.KindPush {
			p, err := phoenix.DecodePush(data)
			if err != nil {
				c.logger().Debug("bad binary push dropped", "err", err)
				return
			}
			c.handleBinaryPush(&p)
			return
		}
		p, err := phoenix.DecodeBroadcastPush(data)
		if err != nil {
			c.logger().Debug("bad binary frame dropped", "err", err)
			return
		}
		c.handleBinaryBroadcast(&p)
		return
	}
	if c.v == phoenix.V2 && len(data) > c.presenceMetaBytes()+presenceEnvelopeBytes {
		if h, ok := phoenix.PeekHeader(data); ok && h.Event == "presence" && c.refuseBigPresenceFrame(&h, data) {
			return
		}
	}
	m, err := phoenix.DecodeText(c.v, data)
	if err != nil {
		c.logger().Debug("bad frame dropped", "err", err)
		return
	}
	switch {
	case m.Topic == "phoenix" && m.Event == "heartbeat":
		c.reply("", m.Ref, "phoenix", true, nil)
	case m.Event == "phx_join":
		c.handleJoin(&m)
		return true
	case m.Event == "phx_leave":
		c.handleLeave(&m)
	default:
		c.handlePush(&m)
		return m.Event == "access_token"
	}
	return false
}

// handlePush handles a client event on a joined channel.
func (c *wsConn) handlePush(m *phoenix.Message) {
	ch, stale := c.channel(m.Topic, m.JoinRef)
	if stale {
		c.logger().Debug("push with a stale join_ref ignored", "topic", m.Topic)
		return
	}
	if ch == nil {
		c.reply("", m.Ref, m.Topic, false, []byte(`{"reason":"unmatched topic"}`))
		return
	}
	switch m.Event {
	case "broadcast":
		c.handleTextBroadcast(ch, m)
	case "presence":
		c.handlePresence(ch, m)
	case "access_token":
		var p struct {
			AccessToken string `json:"access_token"`
		}
		json.Unmarshal(m.Payload, &p)
		c.refreshToken(ch, p.AccessToken)
	default:
		c.logger().Debug("unknown event ignored", "event", m.Event, "topic", m.Topic)
	}
}

// handleLeave answers phx_leave: ok, then phx_close for the channel it
// ended (docs/protocol.md §7.3).
func (c *wsConn) handleLeave(m *phoenix.Message) {
	ch := c.leave(m.Topic, m.JoinRef)
	c.reply(m.JoinRef, m.Ref, m.Topic, true, nil)
	if ch != nil {
		c.push(ch.joinRef, ch.joinRef, m.Topic, "phx_close", nil)
	}
}

// systemPayload builds a system message payload.
func systemPayload(extension, status, message, channel string) []byte {
	b := []byte(`{"extension":`)
	b = phoenix.AppendJSONString(b, extension)
	b = append(b, `,"status":`...)
	b = phoenix.AppendJSONString(b, status)
	b = append(b, `,"message":`...)
	b = phoenix.AppendJSONString(b, message)
	b = append(b, `,"channel":`...)
	b = phoenix.AppendJSONString(b, channel)
	return append(b, '}')
}

// jsonObject reports whether raw is a JSON object.
func jsonObject(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{' && json.Valid(raw)
}
