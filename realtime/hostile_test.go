package realtime

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// wsURL is the WebSocket URL of ts with apikey key.
func (ts *testServer) wsURL(key string) string {
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/realtime/v1/websocket?vsn=2.0.0&apikey=" + key
}

// refusedWith dials u and expects an HTTP refusal with status and the
// JSON error text msg.
func refusedWith(t *testing.T, u string, h http.Header, status int, msg string) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(u, h)
	if err == nil {
		ws.Close()
		t.Fatalf("dial succeeded, want %d %q", status, msg)
	}
	if resp == nil {
		t.Fatalf("dial: %v (no response), want %d", err, status)
	}
	body, _ := io.ReadAll(resp.Body)
	var e struct{ Error string }
	json.Unmarshal(body, &e)
	if resp.StatusCode != status || e.Error != msg {
		t.Fatalf("refusal %d %s, want %d %q", resp.StatusCode, body, status, msg)
	}
}

// Connections past --max-connections, or past --max-connections-per-ip
// from one address, are refused with Supabase's 429 before the upgrade;
// a slot frees when its connection closes.
func TestConnectionCaps(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxConnections = 3; c.MaxConnectionsPerIP = 2 })
	key := token(t, map[string]any{"role": "anon"})
	fromA := http.Header{"X-Forwarded-For": {"203.0.113.7"}}
	a1, _, err := websocket.DefaultDialer.Dial(ts.wsURL(key), fromA)
	if err != nil {
		t.Fatal(err)
	}
	a2, _, err := websocket.DefaultDialer.Dial(ts.wsURL(key), fromA)
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	refusedWith(t, ts.wsURL(key), fromA, http.StatusTooManyRequests, "Too many connected users")
	b1, _, err := websocket.DefaultDialer.Dial(ts.wsURL(key), http.Header{"X-Forwarded-For": {"198.51.100.2"}})
	if err != nil {
		t.Fatalf("another address under the global cap: %v", err)
	}
	defer b1.Close()
	refusedWith(t, ts.wsURL(key), http.Header{"X-Forwarded-For": {"192.0.2.9"}}, http.StatusTooManyRequests, "Too many connected users")
	// SSE streams count against the same caps.
	resp, err := http.Get(ts.URL + "/realtime/v1/sse?channel=x&apikey=" + key)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("SSE over the cap: %d", resp.StatusCode)
	}
	if got := ts.srv.metrics.connsRefused.Load(); got != 3 {
		t.Fatalf("refused counter %d, want 3", got)
	}
	// Closing one frees its slot (the server notices asynchronously).
	a1.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ws, _, err := websocket.DefaultDialer.Dial(ts.wsURL(key), fromA)
		if err == nil {
			ws.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot never freed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A remote client cannot pick its per-address bucket with X-Forwarded-For:
// only a loopback peer (a local proxy) is trusted with it.
func TestClientAddrTrustsForwardedForFromLoopbackOnly(t *testing.T) {
	r := &http.Request{RemoteAddr: "203.0.113.5:4000", Header: http.Header{"X-Forwarded-For": {"1.2.3.4"}}}
	if got := clientAddr(r); got != "203.0.113.5" {
		t.Fatalf("remote peer: %q", got)
	}
	r.RemoteAddr = "127.0.0.1:4000"
	if got := clientAddr(r); got != "1.2.3.4" {
		t.Fatalf("loopback proxy: %q", got)
	}
	r.RemoteAddr = "[::1]:4000"
	r.Header.Del("X-Forwarded-For")
	if got := clientAddr(r); got != "::1" {
		t.Fatalf("loopback without header: %q", got)
	}
}

// fakeAcceptListener fails Accept with errs first, then returns conns.
type fakeAcceptListener struct {
	net.Listener
	mu    sync.Mutex
	errs  []error
	calls int
}

func (l *fakeAcceptListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls++
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// The guarded listener keeps accepting after EMFILE/ENFILE (backing off
// instead of failing Serve), sheds connections past its cap, and counts a
// connection out when it closes.
func TestGuardListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	fake := &fakeAcceptListener{Listener: raw, errs: []error{
		&net.OpError{Op: "accept", Err: syscall.EMFILE},
		&net.OpError{Op: "accept", Err: syscall.ENFILE},
		&net.OpError{Op: "accept", Err: syscall.EMFILE},
	}}
	g := GuardListener(fake, 2, nil)
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := g.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	s1, s2 := <-accepted, <-accepted
	fake.mu.Lock()
	calls := fake.calls
	fake.mu.Unlock()
	if calls < 5 {
		t.Fatalf("Accept called %d times: the EMFILE errors were not retried", calls)
	}
	if g.OpenConns() != 2 {
		t.Fatalf("open %d, want 2", g.OpenConns())
	}
	// A third connection is over the cap: closed by the server at once.
	c3 := dial()
	c3.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c3.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection over the cap was not closed")
	}
	if g.Shed() != 1 {
		t.Fatalf("shed %d, want 1", g.Shed())
	}
	s1.Close()
	s1.Close() // counted out once
	if g.OpenConns() != 1 {
		t.Fatalf("open after close %d, want 1", g.OpenConns())
	}
	dial()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted after a slot freed")
	}
	s2.Close()
	// Any other accept error ends Serve as before.
	raw.Close()
	for range accepted {
	}
}

// Topics are capped at MaxTopicBytes: a longer one (even megabytes) is a
// join error and the connection lives on.
func TestTopicLengthCap(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t, "2.0.0", token(t, map[string]any{"role": "anon"}))
	ok := "realtime:" + strings.Repeat("a", MaxTopicBytes-len("realtime:"))
	if m := c.join(ok, "1", map[string]any{}); status(m) != "ok" {
		t.Fatalf("255-byte topic: %s", m.Payload)
	}
	for i, n := range []int{MaxTopicBytes + 1, 512 << 10} {
		long := "realtime:" + strings.Repeat("b", n-len("realtime:"))
		m := c.join(long, string(rune('2'+i)), map[string]any{})
		if string(m.Payload) != `{"status":"error","response":{"reason":"TopicNameTooLong: Topic names are limited to 255 bytes"}}` {
			t.Fatalf("%d-byte topic: %.200s", n, m.Payload)
		}
	}
	if got := len(ts.srv.hub.Topics()); got != 1 {
		t.Fatalf("hub has %d channels, want only the 255-byte one", got)
	}
	c.send("", "9", "phoenix", "heartbeat", map[string]any{})
	if r := c.expect("phx_reply"); r.msg.Ref != "9" {
		t.Fatalf("heartbeat: %+v", r.msg)
	}
}

// A frame over the read limit (a join with a 4.5 MB topic name) is refused
// from its header with 1009, before the server reads its payload: the
// client stops writing a little past the limit and is closed all the same.
// The limit follows the payload limit, at least 1 MiB.
func TestHugeFrameRefusedByReadLimit(t *testing.T) {
	ts := startServer(t, nil)
	if got := ts.srv.cfg.MaxFrameBytes; got != 1<<20 {
		t.Fatalf("default frame limit %d, want 1 MiB (twice the 256 KiB payload limit and 64 KiB)", got)
	}
	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/realtime/v1/websocket?apikey=" + token(t, map[string]any{"role": "anon"}) + "&vsn=2.0.0"
	ws, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer ws.Close()
	// One 4.5 MB frame announced in its header, of which only the first
	// 1.5 MiB are sent: a server that read the whole frame would wait.
	head := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0} // FIN text, masked, 64-bit length
	binary.BigEndian.PutUint64(head[2:], 4_500_000)
	mask := []byte{1, 2, 3, 4}
	part := []byte(`["1","1","realtime:` + strings.Repeat("t", 3<<19))
	for i := range part {
		part[i] ^= mask[i%4]
	}
	conn := ws.NetConn()
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(append(append(head[:2:2], head[2:]...), append(mask, part...)...)); err != nil {
		t.Fatalf("write: %v", err)
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("want close 1009 before the frame is complete, got %v", err)
	}
	// The service still serves others.
	c := ts.dial(t, "2.0.0", token(t, map[string]any{"role": "anon"}))
	if m := c.join("realtime:after", "1", map[string]any{}); status(m) != "ok" {
		t.Fatalf("join after the huge frame: %s", m.Payload)
	}
}

// The frame limit follows a raised payload limit.
func TestFrameLimitFollowsPayloadLimit(t *testing.T) {
	c := Config{MaxPayloadBytes: 3_000_000}
	c.setDefaults()
	if want := int64(2*3_000_000 + 64<<10); c.MaxFrameBytes != want {
		t.Fatalf("frame limit %d, want %d", c.MaxFrameBytes, want)
	}
	if c.MaxBodyBytes != 5_000_000 {
		t.Fatalf("REST body limit %d, want 5,000,000", c.MaxBodyBytes)
	}
}

// Joins are limited by a token bucket whose burst is the channel limit: a
// page joining every channel at load is served, a client that keeps
// joining is held to the rate and cut off.
func TestJoinBurstThenRate(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxJoinsPerSecond = 2; c.MaxChannelsPerClient = 100 })
	c := ts.dial(t, "2.0.0", token(t, map[string]any{"role": "anon"}))
	for i := 0; i < 100; i++ {
		ref := "r" + string(rune('A'+i%26)) + string(rune('a'+i/26))
		c.send(ref, ref, "realtime:burst-"+ref, "phx_join", map[string]any{"config": map[string]any{}})
	}
	for i := 0; i < 100; i++ {
		if m := c.expect("phx_reply"); status(m.msg) != "ok" {
			t.Fatalf("join %d of the burst: %s", i, m.msg.Payload)
		}
	}
	// The bucket is empty now, give or take the tokens refilled meanwhile:
	// rejoining a joined topic (not over the channel limit) is soon refused.
	refused := false
	for i := 0; i < 10 && !refused; i++ {
		ref := "x" + string(rune('a'+i))
		c.send(ref, ref, "realtime:burst-rAa", "phx_join", map[string]any{"config": map[string]any{}})
		m := c.expect("phx_reply")
		refused = strings.Contains(string(m.msg.Payload), "ClientJoinRateLimitReached: Too many joins per second")
	}
	if !refused {
		t.Fatal("joins past the burst were never rate limited")
	}
}

func TestJoinBucket(t *testing.T) {
	var b joinBucket
	now := time.Unix(1000, 0)
	for i := 0; i < 5; i++ {
		if !b.allow(now, 1, 5) {
			t.Fatalf("burst join %d refused", i)
		}
	}
	if b.allow(now, 1, 5) {
		t.Fatal("join past the burst allowed")
	}
	if !b.allow(now.Add(1100*time.Millisecond), 1, 5) || b.allow(now.Add(1200*time.Millisecond), 1, 5) {
		t.Fatal("refill is not one token per second")
	}
	if n := 0; true {
		later := now.Add(time.Hour)
		for b.allow(later, 1, 5) {
			n++
		}
		if n != 5 {
			t.Fatalf("refill capped at %d, want the burst 5", n)
		}
	}
}

// Phoenix's JS client sends an ArrayBuffer push as a kind-0 frame: it is a
// broadcast with a binary payload (delivered as kind 4, encoding 0) and
// gets a reply; reserved events and unjoined topics are refused with one.
func TestBinaryKind0Push(t *testing.T) {
	ts := startServer(t, nil)
	key := token(t, map[string]any{"role": "anon"})
	sender := ts.dial(t, "2.0.0", key)
	recv := ts.dial(t, "2.0.0", key)
	sender.join("realtime:bin", "1", map[string]any{})
	recv.join("realtime:bin", "1", map[string]any{})
	body := []byte{0, 1, 2, 0xff, '{'}
	push, err := phoenix.AppendPush(nil, "1", "7", "realtime:bin", "blob", body)
	if err != nil {
		t.Fatal(err)
	}
	sender.ws.WriteMessage(websocket.BinaryMessage, push)
	r := sender.expect("phx_reply")
	if r.msg.Ref != "7" || status(r.msg) != "ok" {
		t.Fatalf("reply to the kind-0 push: %+v %s", r.msg, r.msg.Payload)
	}
	f := recv.expect("binary")
	if f.binary.Event != "blob" || f.binary.Encoding != phoenix.EncodingBinary || string(f.binary.Payload) != string(body) || f.binary.Topic != "realtime:bin" {
		t.Fatalf("delivered %+v", f.binary)
	}
	push, _ = phoenix.AppendPush(nil, "1", "8", "realtime:bin", "presence", body)
	sender.ws.WriteMessage(websocket.BinaryMessage, push)
	if r := sender.expect("phx_reply"); r.msg.Ref != "8" || status(r.msg) != "error" || !strings.Contains(string(r.msg.Payload), "binary payloads are not supported for presence") {
		t.Fatalf("reserved event: %s", r.msg.Payload)
	}
	push, _ = phoenix.AppendPush(nil, "", "9", "realtime:nope", "blob", body)
	sender.ws.WriteMessage(websocket.BinaryMessage, push)
	if r := sender.expect("phx_reply"); r.msg.Ref != "9" || string(r.msg.Payload) != `{"status":"error","response":{"reason":"unmatched topic"}}` {
		t.Fatalf("unjoined topic: %s", r.msg.Payload)
	}
}

func TestDecodePushChecksLengths(t *testing.T) {
	good, _ := phoenix.AppendPush(nil, "1", "2", "realtime:t", "ev", []byte("xyz"))
	p, err := phoenix.DecodePush(good)
	if err != nil || p.JoinRef != "1" || p.Ref != "2" || p.Topic != "realtime:t" || p.Event != "ev" || string(p.Payload) != "xyz" {
		t.Fatalf("decode %+v %v", p, err)
	}
	for _, bad := range [][]byte{{0, 1}, {0, 9, 9, 9, 9, 'a'}, {3, 0, 0, 0, 0}} {
		if _, err := phoenix.DecodePush(bad); !errors.Is(err, phoenix.ErrBadFrame) {
			t.Fatalf("% x: %v", bad, err)
		}
	}
}

// Phoenix's authToken option carries the token in Sec-WebSocket-Protocol
// next to "phoenix": the server takes it as the API key and answers with
// the "phoenix" subprotocol, so the handshake succeeds.
func TestPhoenixSubprotocolToken(t *testing.T) {
	ts := startServer(t, nil)
	key := token(t, map[string]any{"role": "anon"})
	enc := strings.TrimRight(base64.URLEncoding.EncodeToString([]byte(key)), "=")
	d := websocket.Dialer{Subprotocols: []string{"phoenix", "base64url.bearer.phx." + enc}}
	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/socket/websocket?vsn=2.0.0"
	ws, resp, err := d.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer ws.Close()
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "phoenix" {
		t.Fatalf("subprotocol answered %q, want phoenix", got)
	}
	c := &client{t: t, ws: ws, v: phoenix.V2}
	if m := c.join("realtime:p", "1", map[string]any{}); status(m) != "ok" {
		t.Fatalf("join: %s", m.Payload)
	}
	// A bad token in the subprotocol is refused like a bad apikey.
	d.Subprotocols = []string{"phoenix", "base64url.bearer.phx." + base64.RawURLEncoding.EncodeToString([]byte("nope"))}
	if ws, resp, err := d.Dial(u, nil); err == nil {
		ws.Close()
		t.Fatal("bad subprotocol token accepted")
	} else if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad subprotocol token: %v %v", resp, err)
	}
}

// Swapping a private channel's token from service_role to anon ends the
// channel: private read permission is checked again (docs/protocol.md §9.2).
func TestPrivateChannelClosedWhenTokenLosesPermission(t *testing.T) {
	ts := startServer(t, nil)
	anon := token(t, map[string]any{"role": "anon"})
	service := token(t, map[string]any{"role": "service_role"})
	c := ts.dial(t, "2.0.0", anon)
	c.send("1", "1", "realtime:secret", "phx_join", map[string]any{"config": map[string]any{"private": true}, "access_token": service})
	if r := c.expect("phx_reply"); status(r.msg) != "ok" {
		t.Fatalf("service_role join: %s", r.msg.Payload)
	}
	// A service_role → service_role swap keeps it.
	c.send("1", "2", "realtime:secret", "access_token", map[string]any{"access_token": token(t, map[string]any{"role": "service_role", "n": 2})})
	c.send("1", "3", "realtime:secret", "access_token", map[string]any{"access_token": token(t, map[string]any{"role": "anon", "sub": "u1"})})
	sys := c.expect("system")
	var p struct{ Extension, Status, Message, Channel string }
	json.Unmarshal(sys.msg.Payload, &p)
	if p.Status != "error" || p.Message != "You do not have permissions to read from this Channel topic: secret" {
		t.Fatalf("system: %s", sys.msg.Payload)
	}
	if f := c.expect("phx_close"); f.msg.Topic != "realtime:secret" {
		t.Fatalf("close: %+v", f.msg)
	}
	ts.srv.hub.BroadcastTo("realtime:secret", true, &channels.Broadcast{Event: "e", Payload: []byte(`{}`)})
	c.send("", "4", "phoenix", "heartbeat", map[string]any{})
	for {
		f := c.read()
		if f.binary != nil || f.msg.Event == "broadcast" {
			t.Fatal("the closed private channel still received a broadcast")
		}
		if f.msg.Ref == "4" {
			break
		}
	}
}

// fakeFeed is a ChangeFeed whose activation error and replay are set by
// the test.
type fakeFeed struct {
	activateErr error
	entered     chan string   // receives the sub of each replay that started
	gate        chan struct{} // replays wait for it to close
}

func (f *fakeFeed) Bind(raw []json.RawMessage) []*channels.Binding { return echoBindings(raw) }
func (f *fakeFeed) Activate(*channels.Subscription, []*channels.Binding) error {
	return f.activateErr
}
func (f *fakeFeed) Deactivate(*channels.Subscription) {}
func (f *fakeFeed) Replay(ctx context.Context, sub *channels.Subscription, _ channels.Cursor, _ int) ([]channels.Frame, bool, error) {
	f.entered <- sub.Identity().Sub
	select {
	case <-f.gate:
		return nil, false, nil
	case <-ctx.Done():
		return nil, true, ctx.Err()
	}
}

// System messages never carry internal error text: a database failure is
// Supabase's text alone, an internal error the generic one.
func TestSystemTextsHideInternalErrors(t *testing.T) {
	for _, tc := range []struct{ err, want string }{
		{"Realtime was unable to connect to the project database: dial tcp 10.1.2.3:5432: connect: connection refused", "Realtime was unable to connect to the project database"},
		{"channels: subscription has no identity", "Unknown Error on Channel"},
		{"Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: [event: *, schema: public, table: t, filters: [], select: nil]", ""},
	} {
		feed := &fakeFeed{activateErr: errors.New(tc.err)}
		ts := startServer(t, func(c *Config) { c.Changes = feed })
		c := ts.dial(t, "2.0.0", token(t, map[string]any{"role": "anon"}))
		c.join("realtime:db", "1", map[string]any{"postgres_changes": []any{map[string]any{"event": "*", "schema": "public", "table": "t"}}})
		sys := c.expect("system")
		var p struct{ Status, Message string }
		json.Unmarshal(sys.msg.Payload, &p)
		want := tc.want
		if want == "" {
			want = tc.err // written for clients: passed as is
		}
		if p.Status != "error" || p.Message != want {
			t.Fatalf("activation error %q → system %s", tc.err, sys.msg.Payload)
		}
		// SSE answers the same text.
		resp, err := http.Get(ts.URL + "/realtime/v1/sse?schema=public&table=t&apikey=" + token(t, map[string]any{"role": "anon"}))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || strings.Contains(string(body), "10.1.2.3") || strings.Contains(string(body), "channels:") {
			t.Fatalf("SSE activation error: %d %s", resp.StatusCode, body)
		}
	}
}

// sseOpen starts an SSE request in the background and reports its status
// (0 on a transport error) on the returned channel; the body is drained
// until the request's context ends.
func sseOpen(ctx context.Context, t *testing.T, u string) <-chan int {
	t.Helper()
	out := make(chan int, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- 0
			return
		}
		defer resp.Body.Close()
		out <- resp.StatusCode
		io.Copy(io.Discard, bufio.NewReader(resp.Body))
	}()
	return out
}

// SSE resumes are capped per user (more are refused with 429) and run in
// a few process-wide slots (more wait): a flood of one user's resumes
// neither runs unbounded nor locks other users out.
func TestSSEResumeCaps(t *testing.T) {
	feed := &fakeFeed{entered: make(chan string, 16), gate: make(chan struct{})}
	ts := startServer(t, func(c *Config) { c.Changes = feed; c.MaxResumesPerUser = 2; c.MaxResumes = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	apikey := token(t, map[string]any{"role": "anon"})
	url := func(sub string) string {
		return ts.URL + "/realtime/v1/sse?schema=public&table=t&last_event_id=0-0&apikey=" + apikey +
			"&access_token=" + token(t, map[string]any{"role": "authenticated", "sub": sub})
	}
	u1a := sseOpen(ctx, t, url("u1"))
	if got := <-feed.entered; got != "u1" {
		t.Fatalf("first replay by %q", got)
	}
	u1b := sseOpen(ctx, t, url("u1")) // admitted, waits for the one slot
	u2 := sseOpen(ctx, t, url("u2"))  // another user: admitted, waits
	// Give both time to be admitted, then the third of u1 is refused.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ts.srv.resumes.mu.Lock()
		n1, n2 := ts.srv.resumes.byUser["sub:u1"], ts.srv.resumes.byUser["sub:u2"]
		ts.srv.resumes.mu.Unlock()
		if n1 == 2 && n2 == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("resumes admitted: u1 %d, u2 %d", n1, n2)
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get(url("u1"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "Too many concurrent resumes") {
		t.Fatalf("third resume of u1: %d %s", resp.StatusCode, body)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "1" {
		t.Fatalf("refused resume: Retry-After %q, want 1", ra)
	}
	select {
	case sub := <-feed.entered:
		t.Fatalf("a second replay (%s) ran while the only slot was taken", sub)
	case <-time.After(100 * time.Millisecond):
	}
	close(feed.gate) // every replay may finish now: all three streams open
	for i, ch := range []<-chan int{u1a, u1b, u2} {
		select {
		case st := <-ch:
			if st != http.StatusOK {
				t.Fatalf("stream %d: status %d", i, st)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("stream %d never opened", i)
		}
	}
}

// A resume slot rests after each resume, three times as long as the
// resume ran, before another resume may take it: back-to-back resumes of
// a flood cannot keep a core busy. The rest is scheduled through the
// gate's after hook, so the test needs no clock.
func TestResumeSlotRests(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxResumes = 1; c.MaxResumesPerUser = 4 })
	var rested time.Duration
	var release func()
	ts.srv.resumes.after = func(d time.Duration, f func()) { rested, release = d, f }

	done, err := ts.srv.enterResume(context.Background(), "sub:u1")
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	for time.Since(began) < time.Millisecond { // the resume "runs" for at least 1 ms
	}
	done()
	if release == nil || rested < 3*time.Millisecond {
		t.Fatalf("slot rest %v (scheduled %v), want at least three times the 1 ms resume", rested, release != nil)
	}
	// While resting, the slot is taken: another user's resume waits.
	if n := len(ts.srv.resumes.slots); n != 1 {
		t.Fatalf("%d slots taken while the only one rests, want 1", n)
	}
	ts.srv.resumes.mu.Lock()
	n := ts.srv.resumes.byUser["sub:u1"]
	ts.srv.resumes.mu.Unlock()
	if n != 1 {
		t.Fatalf("u1 holds %d resumes while its slot rests, want 1 (the rest counts against the flooding user)", n)
	}
	release()
	done2, err := ts.srv.enterResume(context.Background(), "sub:u2")
	if err != nil {
		t.Fatalf("after the rest: %v", err)
	}
	ts.srv.resumes.after = func(_ time.Duration, f func()) { f() }
	done2()
}
