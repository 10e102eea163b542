// Package pglitebridge lets the service use a PGlite database that lives in
// a browser tab. The page loads the ES module this package serves
// (/pglite/v1/bridge.mjs), opens a WebSocket to /pglite/v1/bridge, and runs
// the bytes of every virtual connection the service opens through its own
// PGlite instance. On the service side each virtual connection is a
// net.Conn carrying the PostgreSQL wire protocol, so pgx (the change-table
// source, the RLS checker and their pool) uses it unchanged, through
// [Bridge.Dial] as a pgconn DialFunc or through the private Unix socket of
// [Bridge.ListenUnix]. The tunnel and its rules are described in
// docs/pglite.md, "Browser bridge".
package pglitebridge

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Paths of the bridge endpoint and of the ES module pages load.
const (
	// BridgePath is the WebSocket endpoint a page's bridge connects to.
	BridgePath = "/pglite/v1/bridge"
	// ModulePath serves the bridge's ES module.
	ModulePath = "/pglite/v1/bridge.mjs"
)

//go:embed bridge.mjs
var moduleJS []byte

// ErrNoBridge is returned by Dial when no page connected in time.
var ErrNoBridge = errors.New("pglitebridge: no browser bridge is connected")

// ErrClosed is returned by Dial after Close.
var ErrClosed = errors.New("pglitebridge: closed")

// Config configures a [Bridge].
type Config struct {
	// Secret is the bridge secret a page presents; "" accepts only
	// service-role keys.
	Secret string
	// IsServiceKey reports whether a token is a valid service-role key
	// (a JWT with role service_role); nil accepts none. The anon key must
	// never pass.
	IsServiceKey func(token string) bool
	// Logger receives connect, refuse and disconnect logs; nil discards.
	Logger *slog.Logger
	// HelloTimeout bounds the wait for a page's hello; 0 means 10s.
	HelloTimeout time.Duration
	// DialWait is how long Dial waits for a page to connect when none is;
	// 0 means 10s.
	DialWait time.Duration
	// PingInterval is the keepalive period; a page silent for three of
	// them is dropped. 0 means 15s.
	PingInterval time.Duration
	// WriteTimeout bounds one WebSocket write; 0 means 10s.
	WriteTimeout time.Duration
	// MaxBuffered is how many bytes a virtual connection may have received
	// from the page and not yet read before it is closed; 0 means 64 MiB.
	MaxBuffered int
}

func (c *Config) setDefaults() {
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = 10 * time.Second
	}
	if c.DialWait <= 0 {
		c.DialWait = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 15 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxBuffered <= 0 {
		c.MaxBuffered = 64 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Bridge is the service end of the browser bridge: it accepts at most one
// page at a time and opens virtual database connections through it. It is
// safe for concurrent use.
type Bridge struct {
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader
	nextID   atomic.Uint32

	mu      sync.Mutex    // guards cur, closed, changed, unix
	cur     *link         // the connected page, nil when none
	closed  bool          // Close was called
	changed chan struct{} // closed and replaced whenever cur changes
	unix    []net.Listener
}

// New returns a Bridge for cfg.
func New(cfg Config) *Bridge {
	cfg.setDefaults()
	return &Bridge{
		cfg: cfg,
		log: cfg.Logger,
		upgrader: websocket.Upgrader{
			// Pages run on the product's origin, not the service's: the
			// secret, not the origin, authorizes a bridge.
			CheckOrigin: func(*http.Request) bool { return true },
		},
		changed: make(chan struct{}),
	}
}

// Mount registers the endpoint and the module with handle (for example
// http.ServeMux.Handle).
func (b *Bridge) Mount(handle func(pattern string, h http.Handler)) {
	handle("GET "+BridgePath, http.HandlerFunc(b.ServeBridge))
	handle("GET "+ModulePath, http.HandlerFunc(ServeModule))
}

// ServeModule serves the bridge's ES module. It is public (it holds no
// secret) and may be imported from any origin.
func ServeModule(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cache-Control", "no-cache")
	w.Write(moduleJS)
}

// Connected reports whether a page holds the bridge.
func (b *Bridge) Connected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur != nil
}

// hello is the page's first message.
type hello struct {
	Type   string `json:"type"`
	Secret string `json:"secret"`
}

// Refusal texts, sent as the close reason (and in the page's error).
const (
	textBadHello     = `pglite bridge: the first message must be {"type":"hello","secret":"…"}`
	textUnauthorized = "pglite bridge: invalid bridge secret (use the project's bridge secret or its service-role key; the anon key is refused)"
	textBusy         = "pglite bridge: another bridge already holds this database (one bridge per project at a time; close the other tab)"
	textShutdown     = "pglite bridge: the service is shutting down"
)

// ServeBridge upgrades a page's WebSocket, checks its hello and, when no
// other page holds the bridge, serves it until it disconnects.
func (b *Bridge) ServeBridge(w http.ResponseWriter, r *http.Request) {
	ws, err := b.upgrader.Upgrade(w, r, nil)
	if err != nil {
		b.log.Debug("pglite bridge upgrade failed", "err", err)
		return
	}
	remote := r.RemoteAddr
	ws.SetReadLimit(int64(b.cfg.MaxBuffered))
	ws.SetReadDeadline(time.Now().Add(b.cfg.HelloTimeout))
	mt, data, err := ws.ReadMessage()
	if err != nil {
		b.log.Info("pglite bridge refused", "remote_addr", remote, "err", fmt.Errorf("read hello: %w", err))
		ws.Close()
		return
	}
	var h hello
	if mt != websocket.TextMessage || json.Unmarshal(data, &h) != nil || h.Type != "hello" {
		b.refuse(ws, remote, CloseBadHello, textBadHello)
		return
	}
	if !b.authorized(h.Secret) {
		b.refuse(ws, remote, CloseUnauthorized, textUnauthorized)
		return
	}
	l := newLink(b, ws)
	if err := b.attach(l); err != nil {
		if errors.Is(err, ErrClosed) {
			b.refuse(ws, remote, websocket.CloseGoingAway, textShutdown)
		} else {
			b.refuse(ws, remote, CloseBusy, textBusy)
		}
		return
	}
	b.log.Info("pglite bridge connected", "remote_addr", remote)
	err = l.serve()
	b.detach(l)
	b.log.Info("pglite bridge disconnected", "remote_addr", remote, "err", err)
}

// authorized reports whether secret is the bridge secret or a service-role
// key.
func (b *Bridge) authorized(secret string) bool {
	if secret == "" {
		return false
	}
	if b.cfg.Secret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(b.cfg.Secret)) == 1 {
		return true
	}
	return b.cfg.IsServiceKey != nil && b.cfg.IsServiceKey(secret)
}

func (b *Bridge) refuse(ws *websocket.Conn, remote string, code int, text string) {
	b.log.Info("pglite bridge refused", "remote_addr", remote, "code", code, "reason", text)
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
	// Let the page read the close frame before the TCP connection goes.
	ws.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		if _, _, err := ws.NextReader(); err != nil {
			break
		}
	}
	ws.Close()
}

// attach makes l the current page, unless another one holds the bridge.
func (b *Bridge) attach(l *link) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if b.cur != nil {
		return errors.New("busy")
	}
	b.cur = l
	b.notifyLocked()
	return nil
}

// detach forgets l if it is the current page. b.mu must not be held.
func (b *Bridge) detach(l *link) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cur == l {
		b.cur = nil
		b.notifyLocked()
	}
}

// notifyLocked wakes Dial waiters; b.mu must be held.
func (b *Bridge) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// Dial opens a virtual connection to the page's PGlite. Its signature is
// pgconn's DialFunc; network and addr are ignored. With no page connected
// it waits up to Config.DialWait (or ctx) for one, then fails with
// ErrNoBridge.
func (b *Bridge) Dial(ctx context.Context, _, _ string) (net.Conn, error) {
	timer := time.NewTimer(b.cfg.DialWait)
	defer timer.Stop()
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, ErrClosed
		}
		l, changed := b.cur, b.changed
		b.mu.Unlock()
		if l != nil {
			if c, err := l.open(b.nextID.Add(1)); err == nil {
				return c, nil
			}
			// The page is going away; wait for detach or the next page.
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("pglitebridge: dial: %w", ctx.Err())
		case <-timer.C:
			return nil, ErrNoBridge
		}
	}
}

// Close drops the page (close code 1001) and the Unix listeners, and makes
// Dial fail from now on.
func (b *Bridge) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	l := b.cur
	lns := b.unix
	b.unix = nil
	b.notifyLocked()
	b.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	if l != nil {
		l.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, textShutdown), time.Now().Add(time.Second))
		l.fail(ErrClosed)
	}
}
