package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// Server serves the realtime HTTP API. Create it with New, serve with
// Serve or Handler, stop with Shutdown. It is safe for concurrent use.
type Server struct {
	cfg      Config
	hub      *channels.Hub
	verifier *auth.Verifier
	log      *slog.Logger
	upgrader websocket.Upgrader
	metrics  metrics
	tokens   tokenCache
	ready    atomic.Bool
	mux      *http.ServeMux

	wg sync.WaitGroup // every goroutine the server starts

	mu       sync.Mutex // guards conns, shutdown
	conns    map[uint64]*conn
	sse      map[uint64]*sseConn
	shutdown bool
}

// New returns a Server for cfg. It panics if cfg.Verifier or cfg.Hub is nil.
func New(cfg Config) *Server {
	if cfg.Verifier == nil || cfg.Hub == nil {
		panic("realtime: Config.Verifier and Config.Hub are required")
	}
	cfg.setDefaults()
	s := &Server{
		cfg:      cfg,
		hub:      cfg.Hub,
		verifier: cfg.Verifier,
		log:      cfg.Logger,
		conns:    make(map[uint64]*conn),
		sse:      make(map[uint64]*sseConn),
		upgrader: websocket.Upgrader{
			ReadBufferSize:  512, // larger frames are read through it all the same
			WriteBufferSize: 1024,
			CheckOrigin:     func(*http.Request) bool { return true },
			// permessage-deflate offers are declined cleanly.
			EnableCompression: false,
		},
	}
	s.upgrader.WriteBufferPool = &sync.Pool{}
	s.routes()
	return s
}

// SetReady marks the server ready: /healthz answers 200 from then on.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// Handler returns the HTTP handler of every endpoint.
func (s *Server) Handler() http.Handler { return s.mux }

// Handle adds an extra route (used by the wiring for SSE, admin, metrics).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	for _, p := range []string{"/realtime/v1/websocket", "/socket/websocket", "/websocket"} {
		s.mux.HandleFunc(p, s.handleWebSocket)
	}
	s.mux.HandleFunc("GET /realtime/v1/sse", s.handleSSE)
	s.mux.HandleFunc("GET /sse", s.handleSSE)
	for _, prefix := range []string{"/realtime/v1/api", "/api"} {
		s.mux.HandleFunc("POST "+prefix+"/broadcast", s.handleBroadcastBatch)
		s.mux.HandleFunc("POST "+prefix+"/broadcast/{channel}/events/{event}", s.handleBroadcastEvent)
		s.mux.HandleFunc("OPTIONS "+prefix+"/", s.handlePreflight)
	}
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if !s.ready.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"status":"starting"}`))
		return
	}
	w.Write([]byte(`{"status":"ok"}`))
}

// writeJSONError writes {"error": msg} with status.
func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// handleWebSocket authenticates the apikey, upgrades and serves one
// connection (protocol.md §1).
func (s *Server) handleWebSocket(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	vsn, ok := phoenix.ParseVersion(q.Get("vsn"))
	if !ok {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	key := r.Header.Get("x-api-key")
	if key == "" {
		key = r.Header.Get("apikey")
	}
	if key == "" {
		key = q.Get("apikey")
	}
	if strings.TrimSpace(key) == "" {
		s.log.Info("connection refused", "remote_addr", r.RemoteAddr, "err", "API key is missing")
		writeJSONError(w, http.StatusUnauthorized, "API key is missing")
		return
	}
	v, err := s.verify(key)
	if err != nil {
		s.log.Info("connection refused", "remote_addr", r.RemoteAddr, "err", err)
		writeJSONError(w, auth.ConnectStatus(err), auth.ConnectMessage(err))
		return
	}
	s.mu.Lock()
	down := s.shutdown
	s.mu.Unlock()
	if down {
		writeJSONError(w, http.StatusServiceUnavailable, "Realtime is restarting, please standby")
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade failed", "err", err)
		return
	}
	c := &conn{
		srv:    s,
		ws:     ws,
		id:     s.hub.NextID(),
		v:      vsn,
		enc:    encoderFor(vsn),
		apikey: v.token,
		done:   make(chan struct{}),
		chans:  make(map[string]*channelState),
	}
	c.info = &channels.ConnInfo{
		ID: c.id, Transport: "websocket", Version: vsn.String(), RemoteAddr: remoteAddr(r),
		Since: time.Now(), QueuedBytes: c.queuedBytes, Close: c.Close,
	}
	if !s.track(c) {
		c.Close(channels.ReasonServerShutdown)
		<-c.done
		return
	}
	s.metrics.connections.Add(1)
	s.metrics.connsTotal.Add(1)
	c.logger().Debug("connected", "vsn", vsn.String(), "role", v.claims.Role)
	c.installControlHandlers()
	// Serve on a fresh goroutine and let the handler return: net/http's
	// per-connection buffers, the request and the handler's deep stack are
	// then freed (about 11 KB per idle connection).
	s.wg.Add(1)
	go c.serve()
}

// remoteAddr prefers the proxy's X-Forwarded-For.
func remoteAddr(r *http.Request) string {
	if f := r.Header.Get("X-Forwarded-For"); f != "" {
		return strings.TrimSpace(strings.Split(f, ",")[0])
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	s.conns[c.id] = c
	return true
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c.id)
	s.mu.Unlock()
}

// privateAllowed decides whether claims may join a private channel. Without
// a database to hold realtime.messages policies only service_role may.
func (s *Server) privateAllowed(c *auth.Claims) bool {
	return c.Role == "service_role"
}

// Shutdown closes every connection with a going-away close frame and waits
// for the server's goroutines, or until ctx ends. It does not stop the HTTP
// listener; the caller shuts its http.Server down first or concurrently.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.mu.Lock()
	s.shutdown = true
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	sses := make([]*sseConn, 0, len(s.sse))
	for _, c := range s.sse {
		sses = append(sses, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close(channels.ReasonServerShutdown)
	}
	for _, c := range sses {
		c.closeWith(systemPayload("system", "ok", "Server shutting down", ""), channels.ReasonServerShutdown)
	}
	done := make(chan struct{})
	go func() {
		for _, c := range conns {
			<-c.done
		}
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return errors.Join(errors.New("realtime: shutdown timed out"), ctx.Err())
	}
}
