package hop

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"github.com/openrealtime/realtime/tools/envoycheck"
)

const shippedConfig = "../../../docs/envoy/envoy.yaml"

// seen is what a stand-in upstream reports about the request it got.
type seen struct {
	Cluster string `json:"cluster"`
	Method  string `json:"method"`
	URI     string `json:"uri"`
	Host    string `json:"host"`
}

// standIn is an upstream that names itself, echoes upgraded connections and
// serves test event streams on /realtime/v1/sse.
func standIn(t *testing.T, cluster string, beat time.Duration) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			echoUpgrade(w)
			return
		}
		if r.URL.Path == "/realtime/v1/sse" {
			eventStream(w, r, beat)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(seen{Cluster: cluster, Method: r.Method, URI: r.URL.RequestURI(), Host: r.Host})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// echoUpgrade answers 101 and echoes every byte back.
func echoUpgrade(w http.ResponseWriter) {
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	rw.Flush()
	io.Copy(conn, rw)
}

// eventStream serves ?mode=silent (headers, then nothing) or ?mode=beat
// (a comment every beat until ?for= has passed, then "data: done").
func eventStream(w http.ResponseWriter, r *http.Request, beat time.Duration) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	if r.URL.Query().Get("mode") == "silent" {
		<-r.Context().Done()
		return
	}
	total, _ := time.ParseDuration(r.URL.Query().Get("for"))
	end := time.After(total)
	tick := time.NewTicker(beat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-end:
			io.WriteString(w, "data: done\n\n")
			rc.Flush()
			return
		case <-tick.C:
			io.WriteString(w, ": heartbeat\n\n")
			rc.Flush()
		}
	}
}

// startGateway serves the shipped config with every cluster on a stand-in.
func startGateway(t *testing.T, idle time.Duration) (string, *Gateway) {
	t.Helper()
	b, err := envoycheck.LoadFile(shippedConfig)
	if err != nil {
		t.Fatal(err)
	}
	up := map[string]string{}
	for _, c := range []string{"realtime", "postgrest", "gotrue", "storage", "functions"} {
		up[c] = strings.TrimPrefix(standIn(t, c, idle/5).URL, "http://")
	}
	return serveGateway(t, b, Options{Upstreams: up, IdleTimeout: idle})
}

// serveGateway runs a Gateway for b on a free loopback port until the test
// ends.
func serveGateway(t *testing.T, b *bootstrapv3.Bootstrap, opts Options) (string, *Gateway) {
	t.Helper()
	g, err := New(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(ln) }()
	t.Cleanup(func() {
		g.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), g
}

func TestRoutesMirrorShippedConfig(t *testing.T) {
	addr, _ := startGateway(t, time.Minute)
	cases := []struct {
		method, path string
		cluster, uri string // cluster "" means the gateway answers 404
	}{
		{"GET", "/rest/v1/todos?select=*", "postgrest", "/todos?select=*"},
		{"POST", "/rest/v1/rpc/f", "postgrest", "/rpc/f"},
		{"GET", "/auth/v1/user", "gotrue", "/user"},
		{"POST", "/auth/v1/token?grant_type=password", "gotrue", "/token?grant_type=password"},
		{"PUT", "/storage/v1/object/b/x.png", "storage", "/object/b/x.png"},
		{"GET", "/functions/v1/hello?x=1", "functions", "/hello?x=1"},
		{"POST", "/realtime/v1/api/broadcast", "realtime", "/realtime/v1/api/broadcast"},
		{"POST", "/realtime/v1/api/broadcast/room/events/ev", "realtime", "/realtime/v1/api/broadcast/room/events/ev"},
		{"GET", "/realtime/v1/websocket?apikey=k&vsn=2.0.0", "realtime", "/realtime/v1/websocket?apikey=k&vsn=2.0.0"},
		{"GET", "/rest/v1", "", ""},
		{"GET", "/healthz", "", ""},
		{"GET", "/realtime/v1/websocketx", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http://"+addr+tc.path, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if tc.cluster == "" {
				if res.StatusCode != http.StatusNotFound {
					t.Fatalf("status %d, want 404 (no route)", res.StatusCode)
				}
				return
			}
			var s seen
			if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
				t.Fatalf("status %d: %v", res.StatusCode, err)
			}
			if s.Cluster != tc.cluster || s.URI != tc.uri || s.Method != tc.method {
				t.Fatalf("upstream saw %+v, want %s %s on %s", s, tc.method, tc.uri, tc.cluster)
			}
			if s.Host != addr {
				t.Errorf("upstream Host %q, want the client's %q", s.Host, addr)
			}
		})
	}
}

// upgrade sends a WebSocket upgrade request on a raw connection and returns
// the connection, a reader on it and the status code.
func upgrade(t *testing.T, addr, path string) (net.Conn, *bufio.Reader, int) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", path, addr)
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, br, res.StatusCode
}

func TestUpgradeOnlyOnWebSocketRoute(t *testing.T) {
	addr, _ := startGateway(t, time.Minute)
	for _, p := range []string{"/realtime/v1/sse", "/realtime/v1/api/broadcast", "/rest/v1/todos", "/functions/v1/ws"} {
		if _, _, code := upgrade(t, addr, p); code != http.StatusForbidden {
			t.Errorf("upgrade on %s: status %d, want 403", p, code)
		}
	}
	c, br, code := upgrade(t, addr, "/realtime/v1/websocket")
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade on the WebSocket route: status %d", code)
	}
	io.WriteString(c, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo through the upgraded connection: %q, %v", line, err)
	}
}

// TestIdleTimeoutUpgraded: a silent upgraded connection is closed by the
// proxy; one that keeps talking outlives several idle timeouts.
func TestIdleTimeoutUpgraded(t *testing.T) {
	const idle = time.Second
	addr, g := startGateway(t, idle)

	silent, sbr, code := upgrade(t, addr, "/realtime/v1/websocket")
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", code)
	}
	chatty, cbr, code := upgrade(t, addr, "/realtime/v1/websocket")
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", code)
	}

	closed := make(chan error, 1)
	go func() {
		silent.SetReadDeadline(time.Now().Add(30 * idle)) // upper bound only
		_, err := sbr.ReadByte()
		closed <- err
	}()

	// Talk every idle/5 for three idle timeouts.
	for i := 0; i < 15; i++ {
		msg := fmt.Sprintf("beat %d\n", i)
		if _, err := io.WriteString(chatty, msg); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		chatty.SetReadDeadline(time.Now().Add(30 * idle))
		if line, err := cbr.ReadString('\n'); err != nil || line != msg {
			t.Fatalf("beat %d: got %q, %v: the proxy closed a connection that was not idle", i, line, err)
		}
		time.Sleep(idle / 5)
	}

	err := <-closed
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("silent connection: %v; want it closed by the proxy's idle timeout", err)
	}
	if n := g.IdleClosed(); n < 1 {
		t.Errorf("IdleClosed() = %d: the silent connection was not closed by the idle timer", n)
	}
}

// TestIdleTimeoutEventStream: an event stream with heartbeats outlives the
// idle timeout and delivers its last event; a silent one is cut. Surviving
// also shows the proxy does not buffer: the idle timer watches the client's
// socket, so heartbeats held back in a buffer would not keep it open.
func TestIdleTimeoutEventStream(t *testing.T) {
	const idle = time.Second
	addr, _ := startGateway(t, idle)
	client := &http.Client{Timeout: 30 * idle} // upper bound only

	res, err := client.Get("http://" + addr + "/realtime/v1/sse?mode=beat&for=" + (3 * idle).String())
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || !strings.HasSuffix(string(body), "data: done\n\n") {
		t.Fatalf("stream with heartbeats ended early: %v, body %q", err, body)
	}

	res, err = client.Get("http://" + addr + "/realtime/v1/sse?mode=silent")
	if err != nil {
		t.Fatal(err)
	}
	body, err = io.ReadAll(res.Body)
	res.Body.Close()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("silent stream was not cut by the proxy: %v", err)
	}
	if strings.Contains(string(body), "done") {
		t.Fatalf("silent stream got %q", body)
	}
}

func TestRouteTimeoutAndUnsupported(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer slow.Close()
	doc := `
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 1 } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: l
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: / }
                route: { cluster: slow, timeout: 0.2s }
  clusters:
  - name: slow
    connect_timeout: 1s
    load_assignment:
      cluster_name: slow
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 1 } } } }] }]
`
	b, err := envoycheck.Load([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serveGateway(t, b, Options{Upstreams: map[string]string{"slow": strings.TrimPrefix(slow.URL, "http://")}})
	res, err := http.Get("http://" + addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("route timeout: status %d, want 504", res.StatusCode)
	}

	regexDoc := strings.Replace(doc, "match: { prefix: / }", `match: { safe_regex: { regex: "/.*" } }`, 1)
	b, err = envoycheck.Load([]byte(regexDoc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(b, Options{}); err == nil {
		t.Errorf("New accepted a regex path match it does not mirror")
	}
}
