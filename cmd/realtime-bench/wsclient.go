package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openrealtime/realtime/realtime/phoenix"
)

// wsChannel is one joined topic of a wsConn. The reader goroutine resolves
// it; the joining goroutine waits on replied/ready.
type wsChannel struct {
	topic   string
	joinRef string
	tracker *Tracker // nil on sender channels: nothing should arrive there
	pg      bool     // ready only after the postgres_changes system ok

	replyOnce sync.Once
	readyOnce sync.Once
	replied   chan struct{} // closed on the join reply (ok or error)
	readyCh   chan struct{} // closed when ready, or on any failure
	replyErr  string        // set before replied closes
	readyErr  string        // set before readyCh closes
}

func newWSChannel(topic, joinRef string, tr *Tracker, pg bool) *wsChannel {
	return &wsChannel{topic: topic, joinRef: joinRef, tracker: tr, pg: pg, replied: make(chan struct{}), readyCh: make(chan struct{})}
}

func (ch *wsChannel) reply(err string) {
	ch.replyOnce.Do(func() { ch.replyErr = err; close(ch.replied) })
	if err != "" || !ch.pg {
		ch.ready(err)
	}
}

func (ch *wsChannel) ready(err string) {
	ch.readyOnce.Do(func() { ch.readyErr = err; close(ch.readyCh) })
}

// wsConn is one Phoenix vsn 2.0.0 WebSocket connection. One goroutine reads;
// writes are serialised by wmu.
type wsConn struct {
	idx     int
	ws      *websocket.Conn
	rec     *recorder
	byTopic map[string]*wsChannel // fixed before the reader starts
	refs    atomic.Int64
	wmu     sync.Mutex
	done    chan struct{}
	closing atomic.Bool
	strays  *atomic.Int64 // deliveries on channels that expect none
	ep      *epConn       // the epoll reader's state; nil with the goroutine reader
}

var wsDialer = websocket.Dialer{
	HandshakeTimeout: 15 * time.Second,
	ReadBufferSize:   8 << 10,
	WriteBufferSize:  4 << 10,
	NetDialContext:   (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
}

// dialWS connects to node (cfg.nodeFor) and starts the reader. chans
// are the topics the connection will join; their join refs are 1..n so
// every later ref is larger.
func dialWS(ctx context.Context, cfg *config, node int, apikey string, idx int, chans []*wsChannel, rec *recorder, strays *atomic.Int64) (*wsConn, error) {
	ws, resp, err := wsDialer.DialContext(ctx, cfg.wsURL(node, apikey), nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("bench: websocket: HTTP %d: %w", resp.StatusCode, err)
		}
		return nil, fmt.Errorf("bench: websocket: %w", err)
	}
	c := &wsConn{idx: idx, ws: ws, rec: rec, byTopic: make(map[string]*wsChannel, len(chans)), done: make(chan struct{}), strays: strays}
	for _, ch := range chans {
		c.byTopic[ch.topic] = ch
	}
	c.refs.Store(int64(len(chans)))
	ws.SetReadLimit(wsReadLimit)
	if cfg.Reader == readerEpoll || cfg.Reader == readerURing {
		if err := startEpollRead(c, cfg.Reader == readerURing); err != nil {
			ws.Close()
			return nil, err
		}
		return c, nil
	}
	go c.read()
	return c, nil
}

// nextRef returns a fresh message ref.
func (c *wsConn) nextRef() string { return strconv.FormatInt(c.refs.Add(1), 10) }

// write sends one message with a write deadline.
func (c *wsConn) write(mt int, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(mt, data)
}

// heartbeat sends a Phoenix heartbeat.
func (c *wsConn) heartbeat() error {
	return c.write(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, "", c.nextRef(), "phoenix", "heartbeat", nil))
}

// join sends phx_join for ch with payload and waits for the reply and, for
// postgres_changes channels, the subscription. It returns the reply latency.
func (c *wsConn) join(ctx context.Context, ch *wsChannel, payload []byte, timeout time.Duration) (replyAfter, readyAfter time.Duration, err error) {
	start := time.Now()
	frame := phoenix.AppendText(nil, phoenix.V2, ch.joinRef, ch.joinRef, ch.topic, "phx_join", payload)
	if err := c.write(websocket.TextMessage, frame); err != nil {
		return 0, 0, fmt.Errorf("bench: send join: %w", err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch.replied:
		replyAfter = time.Since(start)
		if ch.replyErr != "" {
			return replyAfter, 0, errors.New(ch.replyErr)
		}
	case <-t.C:
		return 0, 0, errors.New("join timed out")
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	select {
	case <-ch.readyCh:
		if ch.readyErr != "" {
			return replyAfter, 0, errors.New(ch.readyErr)
		}
		return replyAfter, time.Since(start), nil
	case <-t.C:
		return replyAfter, 0, errors.New("postgres_changes subscription timed out")
	case <-ctx.Done():
		return replyAfter, 0, ctx.Err()
	}
}

// pong answers a ping.
func (c *wsConn) pong(payload []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ws.WriteControl(websocket.PongMessage, payload, time.Now().Add(time.Second))
}

// close ends the connection; the reader exits.
func (c *wsConn) close() {
	c.closing.Store(true)
	if c.ep != nil {
		c.ep.end()
	}
	c.wmu.Lock()
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.wmu.Unlock()
	c.ws.Close()
}

// read is the connection's only reader: it resolves joins and records
// deliveries until the socket ends.
func (c *wsConn) read() {
	defer c.readEnded()
	buf := make([]byte, 0, 4096)
	for {
		mt, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		buf, err = readInto(buf[:0], r)
		if err != nil {
			return
		}
		if mt == websocket.BinaryMessage {
			c.onBinary(buf)
		} else {
			c.onText(buf)
		}
	}
}

// readEnded is called once when reading stops: a close the tool did not
// ask for is counted, and channels still waiting fail.
func (c *wsConn) readEnded() {
	if !c.closing.Load() {
		c.rec.closes.Add(1)
	}
	for _, ch := range c.byTopic {
		ch.reply("connection closed")
		ch.ready("connection closed")
	}
	close(c.done)
}

// readInto appends everything r yields to dst.
func readInto(dst []byte, r io.Reader) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

func (c *wsConn) onBinary(data []byte) {
	f, err := phoenix.DecodeBroadcast(data)
	if err != nil {
		c.rec.unparsed.Add(1)
		return
	}
	c.deliver(f.Topic, f.Payload, false)
}

func (c *wsConn) deliver(topic string, payload []byte, change bool) {
	now := time.Now()
	ch := c.byTopic[topic]
	if ch == nil || ch.tracker == nil {
		c.strays.Add(1)
		return
	}
	var mk marker
	var ok bool
	if change {
		mk, ok = parseChangeData(payload)
	} else {
		mk, ok = parseBroadcastPayload(payload)
	}
	if !ok {
		c.rec.unparsed.Add(1)
		return
	}
	c.rec.receipt(c.idx, ch.tracker, mk, now)
}

func (c *wsConn) onText(data []byte) {
	if topic, change, payload, ok := splitDelivery(data); ok {
		c.deliver(string(topic), payload, change)
		return
	}
	m, err := phoenix.DecodeText(phoenix.V2, data)
	if err != nil {
		c.rec.unparsed.Add(1)
		return
	}
	switch m.Event {
	case "postgres_changes":
		c.deliver(m.Topic, m.Payload, true)
	case "broadcast":
		c.deliver(m.Topic, m.Payload, false)
	case "phx_reply":
		ch := c.byTopic[m.Topic]
		if ch == nil || m.Ref != ch.joinRef {
			return // heartbeat or push reply
		}
		if st, _ := scanString(m.Payload, "status"); string(st) == "ok" {
			ch.reply("")
		} else {
			ch.reply("join refused: " + string(m.Payload))
		}
	case "system":
		ch := c.byTopic[m.Topic]
		if ch == nil || !ch.pg {
			return
		}
		if ext, _ := scanString(m.Payload, "extension"); string(ext) != "postgres_changes" {
			return
		}
		if st, _ := scanString(m.Payload, "status"); string(st) == "ok" {
			ch.ready("")
		} else {
			ch.ready("postgres_changes: " + string(m.Payload))
		}
	case "phx_close", "phx_error":
		if ch := c.byTopic[m.Topic]; ch != nil && m.JoinRef == ch.joinRef {
			c.rec.closes.Add(1)
			ch.reply(m.Event)
			ch.ready(m.Event)
		}
	}
}
