package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openrealtime/realtime/internal/demo"
	"github.com/openrealtime/realtime/internal/pgcluster"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// joinAck joins topic asking for broadcast acks and self-delivery.
func joinAck(t *testing.T, c *wsClient, topic, token string) {
	t.Helper()
	p, _ := json.Marshal(map[string]any{"access_token": token, "config": map[string]any{
		"broadcast": map[string]any{"ack": true, "self": false}, "presence": map[string]any{"key": "k"}, "postgres_changes": []any{}}})
	c.ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, "1", "1", topic, "phx_join", p))
	m := c.next("phx_reply", 10*time.Second)
	for m.Topic != topic { // replies to pushes on an earlier, closed channel
		m = c.next("phx_reply", 10*time.Second)
	}
	if !strings.Contains(string(m.Payload), `"status":"ok"`) {
		t.Fatalf("join %s: %s", topic, m.Payload)
	}
}

// pushN sends n pushes of the given type ("broadcast" or "presence" track) on topic.
func pushN(c *wsClient, topic, kind string, n int) {
	for i := range n {
		var p string
		if kind == "presence" {
			p = `{"type":"presence","event":"track","payload":{"n":` + itoa(i) + `}}`
		} else {
			p = `{"type":"broadcast","event":"e","payload":{"n":` + itoa(i) + `}}`
		}
		c.ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, "1", itoa(100+i), topic, kind, []byte(p)))
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// expectSystem waits for a system frame and returns its message.
func expectSystem(t *testing.T, c *wsClient) string {
	t.Helper()
	var p struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	}
	m := c.next("system", 10*time.Second)
	json.Unmarshal(m.Payload, &p)
	if p.Status != "error" {
		t.Fatalf("system frame not an error: %s", m.Payload)
	}
	return p.Message
}

// restBroadcastRequest is a POST of n messages to topic room on the
// project's REST broadcast endpoint at addr.
func restBroadcastRequest(addr, host, key string, n int) *http.Request {
	msgs := make([]map[string]any, n)
	for i := range msgs {
		msgs[i] = map[string]any{"topic": "room", "event": "e", "payload": map[string]any{"i": i}}
	}
	b, _ := json.Marshal(map[string]any{"messages": msgs})
	req, _ := http.NewRequest("POST", "http://"+addr+"/realtime/v1/api/broadcast", strings.NewReader(string(b)))
	req.Host = host
	req.Header.Set("apikey", key)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	return req
}

// restBroadcast posts a batch of n messages to the project's REST endpoint.
func restBroadcast(t *testing.T, addr, host, key string, n int) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(restBroadcastRequest(addr, host, key, n))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// A project's limits answer with Supabase's texts (concurrent users,
// events/s over WebSocket and REST, presence events/s), and a limit
// changed in the projects file applies on SIGHUP without disconnecting
// the project's clients.
func TestProjectsLimitsLive(t *testing.T) {
	keys, err := demo.MakeKeys(demo.NewSecret(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SECRET_LIM", keys.Secret)
	file := filepath.Join(t.TempDir(), "projects.yaml")
	write := func(limits string) {
		t.Helper()
		if err := os.WriteFile(file, []byte("projects:\n  - ref: lim\n    jwt_secret: ${SECRET_LIM}\n"+limits), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("    max_concurrent_users: 2\n    max_events_per_second: 3\n    max_presence_events_per_second: 2\n    max_client_presence_events_per_window: 1000\n")
	mport, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", mport)
	s := launchProjectsOnly(t, file, "--metrics-addr", metricsAddr)
	waitProjectReady(t, s.addr, "lim")
	host := "lim.localhost"

	a, _, err := dialHost(t, s.addr, host, keys.Anon)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := dialHost(t, s.addr, host, keys.Anon)
	if err != nil {
		t.Fatal(err)
	}
	_, resp, err := dialHost(t, s.addr, host, keys.Anon)
	if err == nil || resp == nil || resp.StatusCode != 429 {
		t.Fatalf("third client over max_concurrent_users 2: %v %v", resp, err)
	}
	if body, _ := io.ReadAll(resp.Body); !strings.Contains(string(body), "Too many connected users") {
		t.Fatalf("429 body: %s", body)
	}

	// events/s: the sending channel is closed with Supabase's text.
	joinAck(t, a, "realtime:room", keys.Anon)
	pushN(a, "realtime:room", "broadcast", 50)
	if msg := expectSystem(t, a); msg != "Too many messages per second" {
		t.Fatalf("events/s: %q", msg)
	}
	a.next("phx_close", 10*time.Second)
	if code, body := restBroadcast(t, s.addr, host, keys.Anon, 50); code != 429 || !strings.Contains(body, `"message":"You have exceeded your rate limit"`) {
		t.Fatalf("REST over events/s: %d %s", code, body)
	}

	// presence events/s.
	joinAck(t, b, "realtime:lobby", keys.Anon)
	pushN(b, "realtime:lobby", "presence", 50)
	if msg := expectSystem(t, b); msg != "Too many presence messages per second" {
		t.Fatalf("presence events/s: %q", msg)
	}

	// Raise the limits live: both sockets stay open and work under them.
	write("    max_concurrent_users: 3\n    max_events_per_second: 100000\n    max_presence_events_per_second: 100000\n    max_client_presence_events_per_window: 1000\n")
	s.cmd.Process.Signal(syscall.SIGHUP)
	var c *wsClient
	for i := 0; c == nil; i++ {
		if i == 600 {
			t.Fatal("max_concurrent_users 3 not applied after SIGHUP")
		}
		if c, _, err = dialHost(t, s.addr, host, keys.Anon); err != nil {
			c = nil
			time.Sleep(50 * time.Millisecond)
		}
	}
	joinAck(t, a, "realtime:room2", keys.Anon)
	pushN(a, "realtime:room2", "broadcast", 50)
	for range 50 {
		if m := a.next("phx_reply", 10*time.Second); !strings.Contains(string(m.Payload), `"status":"ok"`) {
			t.Fatalf("broadcast after the raise: %s", m.Payload)
		}
	}
	joinAck(t, b, "realtime:lobby2", keys.Anon)
	pushN(b, "realtime:lobby2", "presence", 20)
	for range 20 {
		if m := b.next("phx_reply", 10*time.Second); !strings.Contains(string(m.Payload), `"status":"ok"`) {
			t.Fatalf("track after the raise: %s", m.Payload)
		}
	}
	if code, body := restBroadcast(t, s.addr, host, keys.Anon, 50); code != 202 {
		t.Fatalf("REST after the raise: %d %s", code, body)
	}
	// /metrics: the project's series carry its label; its counters
	// survived the live change (same stack).
	mresp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	body := string(mb)
	for _, want := range []string{
		`realtime_conn_open_connections{project="lim",transport="websocket"} 3`,
		`realtime_limit_hits_total{project="lim"} `,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, `realtime_limit_hits_total{project="lim"} 0`) {
		t.Fatalf("limit hits not counted:\n%s", body)
	}
	if strings.Contains(s.output(), `"project restarted"`) || !strings.Contains(s.output(), "project limits changed live") {
		t.Fatalf("limits not applied live:\n%s", s.output())
	}
}

// joinOnce sends one join of topic on c and returns its reply.
func joinOnce(c *wsClient, ref, topic, token string) phoenix.Message {
	p, _ := json.Marshal(map[string]any{"access_token": token, "config": map[string]any{}})
	c.ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, ref, ref, topic, "phx_join", p))
	for {
		if m := c.next("phx_reply", 10*time.Second); m.Topic == topic {
			return m
		}
	}
}

// A project's max_joins_per_second is project-wide, as Supabase's: two
// connections that each stay far under their own join bucket together
// pass the project's limit; once the counter's period ends, the
// project's upgrades get 429 `Too many joins per second` and a join gets
// `ClientJoinRateLimitReached: Too many joins per second` and its socket
// closed. Another project with the same limit is unaffected, and its
// limit lowered in the projects file applies live (SIGHUP).
func TestProjectsJoinRateProjectWide(t *testing.T) {
	kj, err := demo.MakeKeys(demo.NewSecret(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ko, err := demo.MakeKeys(demo.NewSecret(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SECRET_JR", kj.Secret)
	t.Setenv("SECRET_OTHER", ko.Secret)
	file := filepath.Join(t.TempDir(), "projects.yaml")
	// Each connection's bucket: burst 100 (the channel limit), refill 10/s.
	limits := "    max_joins_per_second: 10\n    max_channels_per_client: 100\n"
	if err := os.WriteFile(file, []byte("projects:\n  - ref: jr\n    jwt_secret: ${SECRET_JR}\n"+limits+
		"  - ref: other\n    jwt_secret: ${SECRET_OTHER}\n"+limits), 0o600); err != nil {
		t.Fatal(err)
	}
	mport, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", mport)
	s := launchProjectsOnly(t, file, "--metrics-addr", metricsAddr)
	waitProjectReady(t, s.addr, "jr")
	waitProjectReady(t, s.addr, "other")

	dial := func(host, key string) *wsClient {
		t.Helper()
		c, _, err := dialHost(t, s.addr, host, key)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := dial("jr.localhost", kj.Anon), dial("jr.localhost", kj.Anon)
	o := dial("other.localhost", ko.Anon)
	// 10 joins on each of a and b (10% of each bucket), 4 on the other project.
	for i := range 10 {
		for _, c := range []*wsClient{a, b} {
			if m := joinOnce(c, itoa(1+i), fmt.Sprintf("realtime:room-%d", i), kj.Anon); !strings.Contains(string(m.Payload), `"status":"ok"`) {
				t.Fatalf("join %d under the limit: %s", i, m.Payload)
			}
		}
	}
	for i := range 4 {
		if m := joinOnce(o, itoa(1+i), fmt.Sprintf("realtime:room-%d", i), ko.Anon); !strings.Contains(string(m.Payload), `"status":"ok"`) {
			t.Fatalf("other project, join %d: %s", i, m.Payload)
		}
	}
	// The counter's period ends within 5 s: from then on the project's
	// upgrades are refused (a refused upgrade is not a join).
	waitJoinsRefused := func(host, key string) {
		t.Helper()
		for i := 0; ; i++ {
			if i == 300 {
				t.Fatalf("%s: the project's joins/s limit never tripped", host)
			}
			c, resp, err := dialHost(t, s.addr, host, key)
			if err == nil {
				c.ws.Close() // admitted: not tripped yet
			} else if resp != nil && resp.StatusCode == 429 {
				if b, _ := io.ReadAll(resp.Body); string(b) != "{\"error\":\"Too many joins per second\"}\n" {
					t.Fatalf("%s: 429 body: %q", host, b)
				}
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitJoinsRefused("jr.localhost", kj.Anon)
	// A join on an open connection: Supabase's reason, then the socket closes.
	if m := joinOnce(a, "50", "realtime:late", kj.Anon); !strings.Contains(string(m.Payload), `"reason":"ClientJoinRateLimitReached: Too many joins per second"`) {
		t.Fatalf("join over the project limit: %s", m.Payload)
	}
	expectClosed(t, a, "connection over the project's joins/s")
	// The other project joins and connects as before.
	if m := joinOnce(o, "60", "realtime:late", ko.Anon); !strings.Contains(string(m.Payload), `"status":"ok"`) {
		t.Fatalf("other project after jr tripped: %s", m.Payload)
	}
	dial("other.localhost", ko.Anon)

	mresp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if m := string(mb); strings.Contains(m, `realtime_limit_hits_total{project="jr"} 0`) || !strings.Contains(m, `realtime_limit_hits_total{project="other"} 0`) {
		t.Fatalf("limit hits: want jr counted, other 0:\n%s", m)
	}

	// Live: other's limit lowered to 2 on SIGHUP (a new counter); its
	// open connection joins 3 more channels, which trips it at its
	// period's end. Under the old limit (8 joins in all) it never would.
	if err := os.WriteFile(file, []byte("projects:\n  - ref: jr\n    jwt_secret: ${SECRET_JR}\n"+limits+
		"  - ref: other\n    jwt_secret: ${SECRET_OTHER}\n    max_joins_per_second: 2\n    max_channels_per_client: 100\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd.Process.Signal(syscall.SIGHUP)
	for i := 0; !strings.Contains(s.output(), `msg="project limits changed live" project=other`); i++ {
		if i == 600 {
			t.Fatalf("other's limits not changed live:\n%s", s.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 3 {
		if m := joinOnce(o, itoa(70+i), fmt.Sprintf("realtime:after-%d", i), ko.Anon); !strings.Contains(string(m.Payload), `"status":"ok"`) {
			t.Fatalf("other project after the reload, join %d: %s", i, m.Payload)
		}
	}
	waitJoinsRefused("other.localhost", ko.Anon)
}
