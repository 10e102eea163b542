package realtime

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Hostile claims are refused with 401 and a token text at connect, and with
// the token join reason at join (issue #13, item 6).
func TestHostileClaims(t *testing.T) {
	ts := startServer(t, nil)
	connect := func(key string) (int, string) {
		t.Helper()
		u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/realtime/v1/websocket?vsn=2.0.0&apikey=" + key
		ws, resp, err := websocket.DefaultDialer.Dial(u, nil)
		if err == nil {
			ws.Close()
			return 101, ""
		}
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		defer resp.Body.Close()
		var body struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Error
	}
	now := time.Now()
	for _, tc := range []struct {
		name   string
		claims map[string]any
		text   string
		reason string
	}{
		{"exp a string", map[string]any{"role": "anon", "exp": "9999999999"}, "Token expiration time is invalid", "InvalidJWTToken: Token expiration time is invalid"},
		{"exp negative", map[string]any{"role": "anon", "exp": -1}, "Token expiration time is invalid", "InvalidJWTToken: Token expiration time is invalid"},
		{"nbf in an hour", map[string]any{"role": "anon", "nbf": now.Add(time.Hour).Unix()}, "Token is not valid yet", "InvalidJWTToken: Token is not valid yet"},
		{"iat in an hour", map[string]any{"role": "anon", "iat": now.Add(time.Hour).Unix()}, "Token is not valid yet", "InvalidJWTToken: Token is not valid yet"},
		{"NUL in role", map[string]any{"role": "anon\x00"}, "The token provided is not a valid JWT", "MalformedJWT: The token provided is not a valid JWT"},
		{"NUL in sub", map[string]any{"role": "authenticated", "sub": "u\x00"}, "The token provided is not a valid JWT", "MalformedJWT: The token provided is not a valid JWT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := token(t, tc.claims)
			if code, text := connect(bad); code != http.StatusUnauthorized || text != tc.text {
				t.Fatalf("connect: %d %q, want 401 %q", code, text, tc.text)
			}
			c := ts.dial(t, "2.0.0", token(t, map[string]any{"role": "anon"}))
			c.send("1", "1", "realtime:x", "phx_join", map[string]any{"config": map[string]any{}, "access_token": bad})
			r := c.expect("phx_reply")
			want := `{"status":"error","response":{"reason":"` + tc.reason + `"}}`
			if string(r.msg.Payload) != want {
				t.Fatalf("join reply %s, want %s", r.msg.Payload, want)
			}
		})
	}
	// Within the 30 s leeway a slightly early iat/nbf is accepted.
	early := token(t, map[string]any{"role": "anon", "iat": now.Add(10 * time.Second).Unix(), "nbf": now.Add(10 * time.Second).Unix()})
	if code, text := connect(early); code != 101 {
		t.Fatalf("iat/nbf within the leeway: %d %q", code, text)
	}
}

// Big presence cannot kill joiners (issue #13, item 3): a track over the
// member cap closes that channel with Supabase's text, tracks beyond the
// channel cap are refused with a reply, and a joiner of the crowded channel
// gets a presence_state within the cap instead of a slow-consumer close.
func TestHostilePresenceCannotDropJoiners(t *testing.T) {
	const queue = 256 << 10 // channel presence cap: queue/8 = 32 KiB
	ts := startServer(t, func(c *Config) { c.MaxQueueBytes = queue })
	key := token(t, map[string]any{"role": "anon"})
	track := func(c *client, joinRef, ref string, payload any) {
		c.send(joinRef, ref, "realtime:crowd", "presence", map[string]any{"type": "presence", "event": "track", "payload": payload})
	}

	// One member over the 64 KiB member cap (but under the payload limit).
	big := ts.dial(t, "2.0.0", key)
	big.join("realtime:crowd", "1", map[string]any{"presence": map[string]any{"key": "big"}})
	track(big, "1", "2", map[string]any{"pad": strings.Repeat("x", 100<<10)})
	if sys := big.expect("system"); !strings.Contains(string(sys.msg.Payload), `"message":"Track message size exceeded"`) {
		t.Fatalf("system %s", sys.msg.Payload)
	}
	big.expect("phx_close")

	// A presence frame whose size alone is over the cap is refused from its
	// header, before any JSON decoding: even a frame the decoder would
	// reject (cut off after 100 KiB) gets Supabase's text, not silence.
	cut := ts.dial(t, "2.0.0", key)
	cut.join("realtime:crowd", "1", map[string]any{"presence": map[string]any{"key": "cut"}})
	raw := `["1","2","realtime:crowd","presence",{"type":"presence","event":"track","payload":{"pad":"` + strings.Repeat("x", 100<<10)
	if err := cut.ws.WriteMessage(websocket.TextMessage, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	if sys := cut.expect("system"); !strings.Contains(string(sys.msg.Payload), `"message":"Track message size exceeded"`) {
		t.Fatalf("system %s", sys.msg.Payload)
	}
	cut.expect("phx_close")

	// 40 members of 8 KiB: 320 KiB of presence, more than the joiner's
	// whole outgoing budget. Only the first few fit the channel.
	accepted, refused := 0, 0
	for i := range 40 {
		c := ts.dial(t, "2.0.0", key)
		c.join("realtime:crowd", "1", map[string]any{"presence": map[string]any{"key": fmt.Sprintf("m%d", i)}})
		track(c, "1", "2", map[string]any{"pad": strings.Repeat("y", 8<<10)})
		r := c.expect("phx_reply")
		switch string(r.msg.Payload) {
		case `{"status":"ok","response":{}}`:
			accepted++
		case `{"status":"error","response":{"reason":"Presence state size exceeded for this channel"}}`:
			refused++
		default:
			t.Fatalf("track reply %s", r.msg.Payload)
		}
	}
	if accepted == 0 || refused == 0 || accepted > 4 {
		t.Fatalf("accepted %d, refused %d", accepted, refused)
	}

	joiner := ts.dial(t, "2.0.0", key)
	if m := joiner.join("realtime:crowd", "7", map[string]any{"presence": map[string]any{"enabled": true}}); status(m) != "ok" {
		t.Fatalf("join %s", m.Payload)
	}
	st := joiner.expect("presence_state")
	var state map[string]struct{ Metas []json.RawMessage }
	if err := json.Unmarshal(st.msg.Payload, &state); err != nil || len(state) != accepted {
		t.Fatalf("presence_state has %d members (%v), want %d", len(state), err, accepted)
	}
	if len(st.msg.Payload) > queue/8 {
		t.Fatalf("presence_state is %d bytes, over the channel cap %d", len(st.msg.Payload), queue/8)
	}
	// The joiner is alive: its heartbeat is answered.
	joiner.send("", "8", "phoenix", "heartbeat", map[string]any{})
	if r := joiner.expect("phx_reply"); r.msg.Ref != "8" || status(r.msg) != "ok" {
		t.Fatalf("heartbeat %+v", r.msg)
	}
}
