package pglitebridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/openrealtime/realtime/internal/pgcluster"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, op := range []byte{opOpen, opData, opClose} {
		f := appendFrame(nil, op, 0xdeadbeef, []byte("payload"))
		if len(f) != frameHeader+7 || f[0] != op || !bytes.Equal(f[1:5], []byte{0xde, 0xad, 0xbe, 0xef}) {
			t.Fatalf("frame layout: % x", f)
		}
		gop, id, p, err := parseFrame(f)
		if err != nil || gop != op || id != 0xdeadbeef || string(p) != "payload" {
			t.Fatalf("parse: op %d id %x payload %q err %v", gop, id, p, err)
		}
	}
	if _, id, p, err := parseFrame(appendFrame(nil, opOpen, 7, nil)); err != nil || id != 7 || len(p) != 0 {
		t.Fatalf("empty payload: id %d payload %q err %v", id, p, err)
	}
	if _, _, _, err := parseFrame([]byte{opData, 0, 0, 1}); !errors.Is(err, errShortFrame) {
		t.Fatalf("short frame: %v", err)
	}
	if _, _, _, err := parseFrame([]byte{9, 0, 0, 0, 1}); err == nil {
		t.Fatal("unknown op accepted")
	}
}

// testBridge serves a Bridge that accepts the secret "bridge-secret" and the
// service key "service-key" (and nothing else, in particular not
// "anon-key").
func testBridge(t *testing.T, cfg Config) (*Bridge, string) {
	t.Helper()
	if cfg.Secret == "" {
		cfg.Secret = "bridge-secret"
	}
	cfg.IsServiceKey = func(tok string) bool { return tok == "service-key" }
	b := New(cfg)
	mux := http.NewServeMux()
	b.Mount(mux.Handle)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		b.Close()
		srv.Close()
	})
	return b, srv.URL
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + BridgePath }

// connect opens a bridge WebSocket and sends hello (when hello is not nil).
func connect(t *testing.T, base string, hello any) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(base), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	switch h := hello.(type) {
	case nil:
	case []byte:
		ws.WriteMessage(websocket.BinaryMessage, h)
	default:
		data, _ := json.Marshal(h)
		ws.WriteMessage(websocket.TextMessage, data)
	}
	return ws
}

// outcome reads the answer to a hello: "ready", or the close code and text.
func outcome(t *testing.T, ws *websocket.Conn) (ready bool, code int, text string) {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	mt, data, err := ws.ReadMessage()
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return false, ce.Code, ce.Text
	}
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	if mt != websocket.TextMessage || string(data) != `{"type":"ready"}` {
		t.Fatalf("unexpected answer %d %q", mt, data)
	}
	return true, 0, ""
}

func TestHelloAuthorization(t *testing.T) {
	b, base := testBridge(t, Config{})
	cases := []struct {
		name  string
		hello any
		code  int
	}{
		{"binary hello", []byte("hello"), CloseBadHello},
		{"not a hello", map[string]string{"type": "hi", "secret": "bridge-secret"}, CloseBadHello},
		{"wrong secret", map[string]string{"type": "hello", "secret": "guess"}, CloseUnauthorized},
		{"no secret", map[string]string{"type": "hello"}, CloseUnauthorized},
		{"anon key", map[string]string{"type": "hello", "secret": "anon-key"}, CloseUnauthorized},
		{"bridge secret", map[string]string{"type": "hello", "secret": "bridge-secret"}, 0},
		{"service key", map[string]string{"type": "hello", "secret": "service-key"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws := connect(t, base, tc.hello)
			ready, code, text := outcome(t, ws)
			if tc.code == 0 {
				if !ready {
					t.Fatalf("refused with %d %q", code, text)
				}
				ws.Close()
				// One bridge at a time: the next case may connect once the
				// server has seen this one go.
				for deadline := time.Now().Add(10 * time.Second); b.Connected(); {
					if time.Now().After(deadline) {
						t.Fatal("bridge still attached 10 s after its socket closed")
					}
					time.Sleep(5 * time.Millisecond)
				}
				return
			}
			if ready || code != tc.code {
				t.Fatalf("got ready=%v code %d %q, want code %d", ready, code, text, tc.code)
			}
			if tc.code == CloseUnauthorized && !strings.Contains(text, "invalid bridge secret") {
				t.Fatalf("reason %q", text)
			}
		})
	}
}

func TestEmptySecretAcceptsOnlyServiceKey(t *testing.T) {
	b := New(Config{IsServiceKey: func(tok string) bool { return tok == "service-key" }})
	if b.authorized("") || b.authorized("anything") {
		t.Fatal("without a bridge secret only the service key may pass")
	}
	if !b.authorized("service-key") {
		t.Fatal("service key refused")
	}
}

func TestOneBridgeAtATime(t *testing.T) {
	b, base := testBridge(t, Config{})
	first := connect(t, base, map[string]string{"type": "hello", "secret": "bridge-secret"})
	if ready, code, text := outcome(t, first); !ready {
		t.Fatalf("first refused: %d %q", code, text)
	}
	second := connect(t, base, map[string]string{"type": "hello", "secret": "service-key"})
	ready, code, text := outcome(t, second)
	if ready || code != CloseBusy || !strings.Contains(text, "another bridge already holds this database") {
		t.Fatalf("second: ready=%v code %d %q", ready, code, text)
	}
	if !b.Connected() {
		t.Fatal("the refused second bridge dropped the first")
	}
	first.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	first.Close()
	deadline := time.Now().Add(10 * time.Second)
	for b.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("first bridge still held after it closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	third := connect(t, base, map[string]string{"type": "hello", "secret": "bridge-secret"})
	if ready, code, text := outcome(t, third); !ready {
		t.Fatalf("third refused after the first left: %d %q", code, text)
	}
}

func TestModuleServed(t *testing.T) {
	_, base := testBridge(t, Config{})
	res, err := http.Get(base + ModulePath)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") || res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("status %d headers %v", res.StatusCode, res.Header)
	}
	if !bytes.Contains(body, []byte("export async function startBridge(")) {
		t.Fatal("module does not export startBridge")
	}
}

// fakePage plays the browser: it holds the bridge and connects each
// virtual connection to a real PostgreSQL over TCP.
type fakePage struct {
	ws    *websocket.Conn
	addr  string
	wmu   sync.Mutex // serializes ws writes
	mu    sync.Mutex // guards conns
	conns map[uint32]net.Conn
	done  chan struct{}
}

func startFakePage(t *testing.T, base, pgAddr string) *fakePage {
	t.Helper()
	ws := connect(t, base, map[string]string{"type": "hello", "secret": "bridge-secret"})
	if ready, code, text := outcome(t, ws); !ready {
		t.Fatalf("page refused: %d %q", code, text)
	}
	ws.SetReadDeadline(time.Time{})
	p := &fakePage{ws: ws, addr: pgAddr, conns: make(map[uint32]net.Conn), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *fakePage) write(f []byte) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.ws.WriteMessage(websocket.BinaryMessage, f)
}

func (p *fakePage) run() {
	defer close(p.done)
	for {
		_, data, err := p.ws.ReadMessage()
		if err != nil {
			p.mu.Lock()
			for _, c := range p.conns {
				c.Close()
			}
			p.mu.Unlock()
			return
		}
		op, id, payload, err := parseFrame(data)
		if err != nil {
			return
		}
		switch op {
		case opOpen:
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				p.write(appendFrame(nil, opClose, id, nil))
				continue
			}
			p.mu.Lock()
			p.conns[id] = c
			p.mu.Unlock()
			go func() {
				buf := make([]byte, 16<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						p.write(appendFrame(nil, opData, id, buf[:n]))
					}
					if err != nil {
						// The page closes this one itself: it forgets it
						// now, as the bridge sends no close back for it.
						p.mu.Lock()
						if p.conns[id] == c {
							delete(p.conns, id)
						}
						p.mu.Unlock()
						p.write(appendFrame(nil, opClose, id, nil))
						return
					}
				}
			}()
		case opData:
			p.mu.Lock()
			c := p.conns[id]
			p.mu.Unlock()
			if c != nil {
				c.Write(payload)
			}
		case opClose:
			p.mu.Lock()
			if c := p.conns[id]; c != nil {
				c.Close()
				delete(p.conns, id)
			}
			p.mu.Unlock()
		}
	}
}

// open counts the page's live virtual connections.
func (p *fakePage) open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *fakePage) drop() {
	p.ws.Close()
	<-p.done
}

func TestTunnelCarriesPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	defer cl.Stop()
	pgAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cl.Port))

	b, base := testBridge(t, Config{DialWait: 300 * time.Millisecond})

	// No page: Dial waits DialWait, then fails.
	if _, err := b.Dial(ctx, "tcp", "x"); !errors.Is(err, ErrNoBridge) {
		t.Fatalf("dial without a page: %v", err)
	}

	page := startFakePage(t, base, pgAddr)
	cfg, err := pgx.ParseConfig("postgres://postgres@bridge/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DialFunc = b.Dial
	cfg.LookupFunc = func(_ context.Context, host string) ([]string, error) { return []string{host}, nil }

	// Several virtual connections at once, each with its own session.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(ctx)
			var got int
			var big string
			if err := c.QueryRow(ctx, "SELECT $1::int + 1, repeat('x', 200000)", i).Scan(&got, &big); err != nil {
				errs <- err
				return
			}
			if got != i+1 || len(big) != 200000 {
				errs <- errors.New("wrong answer through the tunnel")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("query through the tunnel: %v", err)
	}

	// Notifications pass through: LISTEN on one virtual connection, NOTIFY
	// on another.
	listener, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := listener.Exec(ctx, "LISTEN bridge_test"); err != nil {
		t.Fatal(err)
	}

	// The private socket reaches the same page.
	sockURL, err := b.ListenUnix()
	if err != nil {
		t.Fatal(err)
	}
	writer, err := pgx.Connect(ctx, sockURL)
	if err != nil {
		t.Fatalf("connect through the socket %s: %v", sockURL, err)
	}
	if _, err := writer.Exec(ctx, "SELECT pg_notify('bridge_test', 'hi')"); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	n, err := listener.WaitForNotification(wctx)
	wcancel()
	if err != nil || n.Payload != "hi" {
		t.Fatalf("notification: %v %v", n, err)
	}
	writer.Close(ctx)

	// A closed connection is closed at the page too.
	deadline := time.Now().Add(10 * time.Second)
	for page.open() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("page still has %d connections, want only the listener's", page.open())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The page goes away: the open connection fails, new ones wait and
	// fail, and a new page serves again.
	page.drop()
	if _, err := listener.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("query succeeded after the page left")
	}
	if _, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		t.Fatal("connected with no page")
	}
	got := make(chan error, 1)
	go func() {
		// Dial waits for the next page (DialWait is short, so retry).
		var err error
		for range 50 {
			var c *pgx.Conn
			if c, err = pgx.ConnectConfig(ctx, cfg); err == nil {
				err = c.Ping(ctx)
				c.Close(ctx)
				break
			}
		}
		got <- err
	}()
	startFakePage(t, base, pgAddr)
	if err := <-got; err != nil {
		t.Fatalf("after the page came back: %v", err)
	}
}

func TestCloseEndsPage(t *testing.T) {
	b, base := testBridge(t, Config{})
	ws := connect(t, base, map[string]string{"type": "hello", "secret": "bridge-secret"})
	if ready, _, _ := outcome(t, ws); !ready {
		t.Fatal("refused")
	}
	b.Close()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("after Close: %v", err)
	}
	if _, err := b.Dial(context.Background(), "", ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("dial after Close: %v", err)
	}
}
