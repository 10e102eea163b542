package realtime

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

var testSecret = []byte("test-secret-test-secret-test-secret")

func token(t *testing.T, claims map[string]any) string {
	t.Helper()
	if _, ok := claims["exp"]; !ok {
		claims["exp"] = time.Now().Add(time.Hour).Unix()
	}
	tok, err := auth.SignHS256(testSecret, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type testServer struct {
	*httptest.Server
	srv *Server
}

func startServer(t *testing.T, mod func(*Config)) *testServer {
	t.Helper()
	v, err := auth.NewVerifier(auth.Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Verifier: v, Hub: channels.NewHub(channels.HubConfig{})}
	if mod != nil {
		mod(&cfg)
	}
	s := New(cfg)
	s.SetReady(true)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
	})
	return &testServer{Server: hs, srv: s}
}

// client is a raw protocol client for tests.
type client struct {
	t  *testing.T
	ws *websocket.Conn
	v  phoenix.Version
}

func (ts *testServer) dial(t *testing.T, vsn string, key string) *client {
	t.Helper()
	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/realtime/v1/websocket?apikey=" + key + "&vsn=" + vsn
	ws, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	v, _ := phoenix.ParseVersion(vsn)
	return &client{t: t, ws: ws, v: v}
}

func (c *client) send(joinRef, ref, topic, event string, payload any) {
	c.t.Helper()
	p, _ := json.Marshal(payload)
	var frame []byte
	if c.v == phoenix.V1 {
		frame, _ = json.Marshal(map[string]any{"topic": topic, "event": event, "payload": json.RawMessage(p), "ref": ref, "join_ref": joinRef})
	} else {
		frame = phoenix.AppendText(nil, phoenix.V2, joinRef, ref, topic, event, p)
	}
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		c.t.Fatal(err)
	}
}

type frame struct {
	msg    phoenix.Message
	binary *phoenix.BroadcastFrame
}

func (c *client) read() frame {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	mt, data, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if mt == websocket.BinaryMessage {
		b, err := phoenix.DecodeBroadcast(data)
		if err != nil {
			c.t.Fatal(err)
		}
		return frame{binary: &b}
	}
	if c.v == phoenix.V1 {
		var o struct {
			Topic, Event string
			Payload      json.RawMessage
			Ref          *string
		}
		if err := json.Unmarshal(data, &o); err != nil {
			c.t.Fatalf("bad v1 frame %s", data)
		}
		m := phoenix.Message{Topic: o.Topic, Event: o.Event, Payload: o.Payload}
		if o.Ref != nil {
			m.Ref = *o.Ref
		}
		return frame{msg: m}
	}
	m, err := phoenix.DecodeText(phoenix.V2, data)
	if err != nil {
		c.t.Fatalf("bad frame %s: %v", data, err)
	}
	return frame{msg: m}
}

// expect reads until a frame with the event arrives (skipping others).
func (c *client) expect(event string) frame {
	c.t.Helper()
	for i := 0; i < 50; i++ {
		f := c.read()
		if testing.Verbose() {
			c.t.Logf("frame %s %s %s", f.msg.Topic, f.msg.Event, f.msg.Payload)
		}
		if f.binary != nil && event == "binary" {
			return f
		}
		if f.binary == nil && f.msg.Event == event {
			return f
		}
	}
	c.t.Fatalf("no %s frame", event)
	return frame{}
}

func (c *client) join(topic, ref string, config map[string]any) phoenix.Message {
	c.t.Helper()
	c.send(ref, ref, topic, "phx_join", map[string]any{"config": config})
	f := c.expect("phx_reply")
	return f.msg
}

func status(m phoenix.Message) string {
	var p struct{ Status string }
	json.Unmarshal(m.Payload, &p)
	return p.Status
}

func TestHeartbeatAndJoinReply(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t, "2.0.0", token(t, map[string]any{"role": "anon"}))
	c.send("", "11", "phoenix", "heartbeat", map[string]any{})
	r := c.expect("phx_reply")
	if r.msg.Ref != "11" || r.msg.JoinRef != "" || string(r.msg.Payload) != `{"status":"ok","response":{}}` {
		t.Fatalf("heartbeat reply %+v %s", r.msg, r.msg.Payload)
	}
	m := c.join("realtime:room1", "6", map[string]any{"broadcast": map[string]any{"self": false}, "presence": map[string]any{"key": ""}, "postgres_changes": []any{}})
	if m.JoinRef != "6" || m.Ref != "6" || string(m.Payload) != `{"status":"ok","response":{"postgres_changes":[]}}` {
		t.Fatalf("join reply %+v %s", m, m.Payload)
	}
}

func TestJoinEchoesBindingsAndReportsNoDatabase(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t, "2.0.0", token(t, map[string]any{"role": "anon"}))
	m := c.join("realtime:room1", "6", map[string]any{"postgres_changes": []any{
		map[string]any{"event": "INSERT", "schema": "public", "table": "todos", "filter": "id=eq.1"},
		map[string]any{"event": "*", "schema": "public"},
	}})
	var p struct {
		Status   string
		Response struct {
			PostgresChanges []map[string]any `json:"postgres_changes"`
		}
	}
	json.Unmarshal(m.Payload, &p)
	pc := p.Response.PostgresChanges
	if p.Status != "ok" || len(pc) != 2 || pc[0]["event"] != "INSERT" || pc[0]["filter"] != "id=eq.1" || pc[1]["event"] != "*" {
		t.Fatalf("reply %s", m.Payload)
	}
	for _, b := range pc {
		if id, ok := b["id"].(float64); !ok || id <= 0 {
			t.Fatalf("bad id in %v", b)
		}
	}
	sys := c.expect("system")
	if !strings.Contains(string(sys.msg.Payload), `"extension":"postgres_changes","status":"error"`) || sys.msg.JoinRef != "6" {
		t.Fatalf("system %+v %s", sys.msg, sys.msg.Payload)
	}
	// The channel stays joined.
	c.send("6", "7", "realtime:room1", "presence", map[string]any{"type": "presence", "event": "track", "payload": map[string]any{"a": 1}})
	if r := c.expect("phx_reply"); status(r.msg) != "ok" {
		t.Fatalf("track after system error: %s", r.msg.Payload)
	}
}

func TestBroadcastBinaryAndVersions(t *testing.T) {
	ts := startServer(t, nil)
	key := token(t, map[string]any{"role": "anon"})
	a := ts.dial(t, "2.0.0", key)
	b := ts.dial(t, "2.0.0", key)
	v1 := ts.dial(t, "1.0.0", key)
	a.join("realtime:room", "1", map[string]any{"broadcast": map[string]any{"ack": true}})
	b.join("realtime:room", "1", map[string]any{})
	v1.join("realtime:room", "1", map[string]any{})

	push, _ := phoenix.AppendBroadcastPush(nil, "1", "2", "realtime:room", "msg", nil, phoenix.EncodingJSON, []byte(`{"hello":"world"}`))
	a.ws.WriteMessage(websocket.BinaryMessage, push)
	if r := a.expect("phx_reply"); status(r.msg) != "ok" || r.msg.Ref != "2" || r.msg.JoinRef != "1" {
		t.Fatalf("ack %+v", r.msg)
	}
	got := b.expect("binary").binary
	if got.Topic != "realtime:room" || got.Event != "msg" || string(got.Payload) != `{"hello":"world"}` || got.Encoding != phoenix.EncodingJSON {
		t.Fatalf("kind 4 %+v", got)
	}
	m := v1.expect("broadcast").msg
	if string(m.Payload) != `{"type":"broadcast","event":"msg","payload":{"hello":"world"}}` {
		t.Fatalf("v1 got %s", m.Payload)
	}
	// Binary payloads reach vsn 2 only.
	push, _ = phoenix.AppendBroadcastPush(nil, "1", "3", "realtime:room", "bin", nil, phoenix.EncodingBinary, []byte{0, 1, 2})
	a.ws.WriteMessage(websocket.BinaryMessage, push)
	if bin := b.expect("binary").binary; bin.Encoding != phoenix.EncodingBinary || string(bin.Payload) != "\x00\x01\x02" {
		t.Fatalf("binary %+v", bin)
	}
	// A vsn 1 sender's object is forwarded unchanged to everyone.
	v1.send("1", "5", "realtime:room", "broadcast", map[string]any{"type": "broadcast", "event": "x", "payload": map[string]any{"n": 1}})
	m = b.expect("broadcast").msg
	if m.JoinRef != "" || m.Ref != "" || string(m.Payload) != `{"event":"x","payload":{"n":1},"type":"broadcast"}` {
		t.Fatalf("v2 from v1: %+v %s", m, m.Payload)
	}
	// The vsn 1 client got no frame for the binary message: its next frame
	// is the heartbeat reply.
	v1.send("", "9", "phoenix", "heartbeat", map[string]any{})
	if f := v1.read(); f.msg.Event != "phx_reply" || f.msg.Ref != "9" {
		t.Fatalf("v1 next frame %+v", f.msg)
	}
}

func TestPresenceDiffsAndState(t *testing.T) {
	ts := startServer(t, nil)
	key := token(t, map[string]any{"role": "anon"})
	a := ts.dial(t, "2.0.0", key)
	b := ts.dial(t, "2.0.0", key)
	a.join("realtime:p", "1", map[string]any{"presence": map[string]any{"key": "alice", "enabled": true}})
	if st := a.expect("presence_state"); string(st.msg.Payload) != "{}" || st.msg.JoinRef != "1" {
		t.Fatalf("empty state %+v %s", st.msg, st.msg.Payload)
	}
	a.send("1", "2", "realtime:p", "presence", map[string]any{"type": "presence", "event": "track", "payload": map[string]any{"v": 1}})
	a.expect("phx_reply")
	d1 := a.expect("presence_diff")
	var diff struct {
		Joins  map[string]struct{ Metas []map[string]any }
		Leaves map[string]struct{ Metas []map[string]any }
	}
	json.Unmarshal(d1.msg.Payload, &diff)
	ref1, _ := diff.Joins["alice"].Metas[0]["phx_ref"].(string)
	if len(ref1) != 16 || diff.Joins["alice"].Metas[0]["v"] != float64(1) {
		t.Fatalf("diff %s", d1.msg.Payload)
	}
	b.join("realtime:p", "1", map[string]any{"presence": map[string]any{"key": "bob", "enabled": true}})
	st := b.expect("presence_state")
	if !strings.Contains(string(st.msg.Payload), ref1) {
		t.Fatalf("state %s lacks %s", st.msg.Payload, ref1)
	}
	// Re-track: one diff, new meta in joins with phx_ref_prev, old in leaves.
	a.send("1", "3", "realtime:p", "presence", map[string]any{"type": "presence", "event": "track", "payload": map[string]any{"v": 2}})
	d2 := b.expect("presence_diff")
	diff.Joins, diff.Leaves = nil, nil
	json.Unmarshal(d2.msg.Payload, &diff)
	j := diff.Joins["alice"].Metas[0]
	l := diff.Leaves["alice"].Metas[0]
	if j["phx_ref_prev"] != ref1 || l["phx_ref"] != ref1 || j["phx_ref"] == ref1 || j["v"] != float64(2) {
		t.Fatalf("update diff %s", d2.msg.Payload)
	}
	// Same payload again: no diff. Then disconnect: leave diff.
	a.send("1", "4", "realtime:p", "presence", map[string]any{"type": "presence", "event": "track", "payload": map[string]any{"v": 2}})
	a.ws.Close()
	d3 := b.expect("presence_diff")
	diff.Joins, diff.Leaves = nil, nil
	json.Unmarshal(d3.msg.Payload, &diff)
	if len(diff.Joins) != 0 || diff.Leaves["alice"].Metas[0]["phx_ref"] != j["phx_ref"] {
		t.Fatalf("leave diff %s", d3.msg.Payload)
	}
}

func TestLimitsAndBadInput(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxChannelsPerClient = 3; c.MaxPayloadBytes = 100 })
	c := ts.dial(t, "2.0.0", token(t, map[string]any{"role": "anon"}))
	for i, topic := range []string{"realtime:a", "realtime:b", "realtime:c"} {
		if m := c.join(topic, string(rune('1'+i)), map[string]any{"broadcast": map[string]any{"ack": true}}); status(m) != "ok" {
			t.Fatalf("join %s: %s", topic, m.Payload)
		}
	}
	m := c.join("realtime:d", "9", map[string]any{})
	if string(m.Payload) != `{"status":"error","response":{"reason":"ChannelRateLimitReached: Too many channels"}}` {
		t.Fatalf("4th channel: %s", m.Payload)
	}
	// Garbage, wrong shapes, bad binary lengths: dropped, connection lives.
	c.ws.WriteMessage(websocket.TextMessage, []byte("not json"))
	c.ws.WriteMessage(websocket.TextMessage, []byte(`[1,2]`))
	c.ws.WriteMessage(websocket.BinaryMessage, []byte{3, 9, 9, 9, 9, 9, 1})
	c.send("", "20", "realtime:zzz", "broadcast", map[string]any{})
	if r := c.expect("phx_reply"); string(r.msg.Payload) != `{"status":"error","response":{"reason":"unmatched topic"}}` || r.msg.Ref != "20" {
		t.Fatalf("unmatched: %s", r.msg.Payload)
	}
	big := strings.Repeat("x", 200)
	push, _ := phoenix.AppendBroadcastPush(nil, "1", "21", "realtime:a", "e", nil, phoenix.EncodingJSON, []byte(`{"b":"`+big+`"}`))
	c.ws.WriteMessage(websocket.BinaryMessage, push)
	if r := c.expect("phx_reply"); status(r.msg) != "error" || r.msg.Ref != "21" {
		t.Fatalf("oversized: %s", r.msg.Payload)
	}
	c.send("", "22", "phoenix", "heartbeat", map[string]any{})
	if r := c.expect("phx_reply"); r.msg.Ref != "22" {
		t.Fatalf("heartbeat after bad input: %+v", r.msg)
	}
}

func TestJoinTokenErrorsAndExpiry(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t, "2.0.0", token(t, map[string]any{"role": "anon"}))
	expired := token(t, map[string]any{"role": "authenticated", "exp": time.Now().Add(-10 * time.Second).Unix()})
	c.send("1", "1", "realtime:x", "phx_join", map[string]any{"config": map[string]any{}, "access_token": expired})
	r := c.expect("phx_reply")
	if !strings.Contains(string(r.msg.Payload), `"reason":"InvalidJWTToken: Token has expired 1`) {
		t.Fatalf("expired join: %s", r.msg.Payload)
	}
	soon := token(t, map[string]any{"role": "authenticated", "exp": time.Now().Add(1500 * time.Millisecond).Unix()})
	c.send("2", "2", "realtime:y", "phx_join", map[string]any{"config": map[string]any{}, "access_token": soon})
	if r := c.expect("phx_reply"); status(r.msg) != "ok" {
		t.Fatalf("join: %s", r.msg.Payload)
	}
	sys := c.expect("system")
	if !strings.Contains(string(sys.msg.Payload), `"message":"Token has expired 0 seconds ago"`) || sys.msg.JoinRef != "2" {
		t.Fatalf("expiry system: %s", sys.msg.Payload)
	}
	if cl := c.expect("phx_close"); cl.msg.JoinRef != "2" || cl.msg.Ref != "2" {
		t.Fatalf("phx_close %+v", cl.msg)
	}
}

func TestConnectRefusals(t *testing.T) {
	ts := startServer(t, nil)
	try := func(key string) (int, string) {
		u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/socket/websocket?vsn=2.0.0"
		if key != "" {
			u += "&apikey=" + key
		}
		_, resp, err := websocket.DefaultDialer.Dial(u, nil)
		if err == nil {
			t.Fatal("connected")
		}
		var body struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Error
	}
	if code, msg := try(""); code != http.StatusUnauthorized || msg != "API key is missing" {
		t.Fatalf("missing: %d %q", code, msg)
	}
	if code, msg := try(token(t, map[string]any{"role": "anon", "exp": time.Now().Add(-time.Minute).Unix()})); code != 401 || msg != "Token has expired" {
		t.Fatalf("expired: %d %q", code, msg)
	}
	other, _ := auth.SignHS256([]byte("another-secret-another-secret-xx"), map[string]any{"role": "anon", "exp": time.Now().Add(time.Hour).Unix()})
	if code, msg := try(other); code != 401 || msg != "Failed to validate JWT signature" {
		t.Fatalf("wrong key: %d %q", code, msg)
	}
}

// A client that never reads is closed as a slow consumer while a healthy
// subscriber of the same topic keeps receiving everything.
func TestSlowConsumerDoesNotStallOthers(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxQueueBytes = 64 << 10; c.WriteTimeout = time.Second })
	key := token(t, map[string]any{"role": "anon"})
	slow := ts.dial(t, "2.0.0", key)
	fast := ts.dial(t, "2.0.0", key)
	slow.join("realtime:flood", "1", map[string]any{})
	fast.join("realtime:flood", "1", map[string]any{})
	payload := []byte(`{"pad":"` + strings.Repeat("p", 4000) + `"}`)
	const n = 2000
	progress := make(chan int, n)
	go func() {
		for got := 1; got <= n; got++ {
			fast.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, _, err := fast.ws.ReadMessage(); err != nil {
				break
			}
			progress <- got
		}
		close(progress)
	}()
	// The producer keeps at most 8 messages ahead of the healthy reader, so
	// only the stalled client can fall behind.
	read := 0
	for i := 0; i < n; i++ {
		for i-read >= 8 {
			p, ok := <-progress
			if !ok {
				t.Fatalf("healthy subscriber stopped after %d of %d", read, n)
			}
			read = p
		}
		ts.srv.hub.BroadcastTo("realtime:flood", false, &channels.Broadcast{Event: "e", Payload: payload})
	}
	for p := range progress {
		read = p
	}
	if read != n {
		t.Fatalf("healthy subscriber got %d of %d", read, n)
	}
	if ts.srv.metrics.slowConsumers.Load() == 0 {
		t.Fatal("the stalled client was not closed as a slow consumer")
	}
}
