package realtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// serve is the read loop, run on its own goroutine (counted in srv.wg). It
// returns when the socket closes; then every channel of the connection is
// left.
func (c *conn) serve() {
	c.ws.SetReadLimit(c.srv.cfg.MaxFrameBytes)
	c.loop()
}

// loop reads frames. After a frame whose handling grows the stack (a join
// decodes JSON and verifies a JWT), it continues on a fresh goroutine and
// returns, so the long-lived reader of an idle connection keeps a small
// stack. Frames are still handled strictly in order.
func (c *conn) loop() {
	hop := false
	defer func() {
		if !hop {
			c.cleanup()
			c.srv.metrics.connections.Add(-1)
			c.srv.wg.Done()
		}
	}()
	for {
		closing := c.closingNow()
		if !closing {
			c.ws.SetReadDeadline(time.Now().Add(c.srv.cfg.IdleTimeout))
		}
		mt, data, err := c.ws.ReadMessage()
		if closing || c.closingNow() {
			if err != nil {
				return
			}
			continue // draining after our close frame
		}
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				c.Close(channels.ReasonIdle)
			} else if errors.Is(err, websocket.ErrReadLimit) {
				c.logger().Warn("frame over the size limit", "limit", c.srv.cfg.MaxFrameBytes)
				c.Close(channels.ReasonProtocol)
			} else {
				c.Close(channels.ReasonClientLeft)
			}
			return
		}
		c.srv.metrics.messageIn(mt == websocket.BinaryMessage)
		if c.handleFrame(mt, data) {
			hop = true
			go c.loop()
			return
		}
	}
}

// handleFrame dispatches one inbound message. Bad frames are logged and
// dropped; they never close the connection. heavy reports that handling
// it grew the stack (a join or a token swap).
func (c *conn) handleFrame(mt int, data []byte) (heavy bool) {
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
		p, err := phoenix.DecodeBroadcastPush(data)
		if err != nil {
			c.logger().Debug("bad binary frame dropped", "err", err)
			return
		}
		c.handleBinaryBroadcast(&p)
		return
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

// channel returns the joined channel for topic, checking that joinRef (when
// given) is the current one. ok is false for unjoined topics; stale is true
// for a push carrying an old join_ref, which is ignored.
func (c *conn) channel(topic, joinRef string) (ch *channelState, stale bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch = c.chans[topic]
	if ch == nil {
		return nil, false
	}
	if joinRef != "" && joinRef != ch.joinRef {
		return nil, true
	}
	return ch, false
}

func (c *conn) handlePush(m *phoenix.Message) {
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
		c.handleAccessToken(ch, m)
	default:
		c.logger().Debug("unknown event ignored", "event", m.Event, "topic", m.Topic)
	}
}

func (c *conn) handleLeave(m *phoenix.Message) {
	c.mu.Lock()
	ch := c.chans[m.Topic]
	if ch != nil && (m.JoinRef == "" || m.JoinRef == ch.joinRef) {
		delete(c.chans, m.Topic)
		c.stopChannelLocked(ch)
	} else {
		ch = nil
	}
	c.mu.Unlock()
	c.reply(m.JoinRef, m.Ref, m.Topic, true, nil)
	if ch != nil {
		c.leaveChannel(ch)
		c.push(ch.joinRef, ch.joinRef, m.Topic, "phx_close", nil)
	}
}

// stopChannelLocked stops a channel's timers. c.mu must be held.
func (c *conn) stopChannelLocked(ch *channelState) {
	if ch.expiry != nil {
		ch.expiry.Stop()
	}
}

// leaveChannel removes a channel's subscription from the hub and the change feed.
func (c *conn) leaveChannel(ch *channelState) {
	if ch.pgBind != nil && c.srv.cfg.Changes != nil {
		c.srv.cfg.Changes.Deactivate(ch.sub)
	}
	c.srv.hub.Unsubscribe(ch.sub)
	c.srv.metrics.channelLeft()
}

// closeChannel ends a channel from the server side: a system error with msg,
// then phx_close (protocol.md §7.3). The client does not rejoin.
func (c *conn) closeChannel(topic string, ch *channelState, msg string) {
	c.mu.Lock()
	if c.chans[topic] != ch {
		c.mu.Unlock()
		return
	}
	delete(c.chans, topic)
	c.stopChannelLocked(ch)
	c.mu.Unlock()
	c.leaveChannel(ch)
	c.push(ch.joinRef, "", topic, "system", systemPayload("system", "error", msg, ch.sub.Name))
	c.push(ch.joinRef, ch.joinRef, topic, "phx_close", nil)
}

// cleanup leaves every channel after the socket closed.
func (c *conn) cleanup() {
	c.Close(channels.ReasonClientLeft)
	c.mu.Lock()
	chans := c.chans
	c.chans = nil
	for _, ch := range chans {
		c.stopChannelLocked(ch)
	}
	c.mu.Unlock()
	for _, ch := range chans {
		c.leaveChannel(ch)
	}
	<-c.done
	c.ws.Close()
	c.srv.forget(c)
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
