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

	"github.com/gorilla/websocket"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
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

	admission admission // connection caps
	// lim holds the limits in force; replaced whole by SetLimits.
	lim          atomic.Pointer[Limits]
	eventRate    secondRate // client broadcasts per second
	presenceRate secondRate // presence events per second
	joinRate     joinRate   // project-wide joins (MaxProjectJoinsPerSecond)
	// remote sums the other nodes' figures on a node of a cluster; nil on
	// a single node (clusterload.go).
	remote  atomic.Pointer[func() Load]
	resumes resumeGate // SSE resume caps

	wg sync.WaitGroup // every goroutine the server starts

	coalesce coalescer // hot connections' writes (coalesce.go)

	mu       sync.Mutex // guards sessions, shutdown
	sessions map[uint64]*session
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
		sessions: make(map[uint64]*session),
		upgrader: websocket.Upgrader{
			ReadBufferSize:  512, // larger frames are read through it all the same
			WriteBufferSize: 1024,
			CheckOrigin:     func(*http.Request) bool { return true },
			// permessage-deflate offers are declined cleanly.
			EnableCompression: false,
		},
	}
	s.upgrader.WriteBufferPool = &sync.Pool{}
	lim := limitsOf(&cfg)
	s.lim.Store(&lim)
	// Phoenix's JS client offers the "phoenix" subprotocol when it carries
	// its auth token in Sec-WebSocket-Protocol (docs/protocol.md §1.2).
	s.upgrader.Subprotocols = []string{"phoenix"}
	s.resumes.slots = make(chan struct{}, cfg.MaxResumes)
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

// track registers a session for shutdown, metrics and the inspector; it
// refuses once the server is shutting down.
func (s *Server) track(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	s.sessions[ss.id] = ss
	s.metrics.connections.Add(1)
	return true
}

// forget removes a session registered by track.
func (s *Server) forget(ss *session) {
	s.mu.Lock()
	if s.sessions[ss.id] == ss {
		delete(s.sessions, ss.id)
		s.metrics.connections.Add(-1)
	}
	s.mu.Unlock()
}

// shuttingDown reports whether Shutdown has begun.
func (s *Server) shuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

// sessionCounts returns the open sessions by transport.
func (s *Server) sessionCounts() (ws, sse int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		if ss.kind == transportSSE {
			sse++
		} else {
			ws++
		}
	}
	return ws, sse
}

// privateAllowed decides whether claims may join a private channel. Without
// a database to hold realtime.messages policies only service_role may.
func (s *Server) privateAllowed(c *auth.Claims) bool {
	return c.Role == "service_role"
}

// Shutdown closes every connection (a service-restart close frame on
// WebSocket, a last system event on SSE) and waits for the server's
// goroutines, or until ctx ends. It does not stop the HTTP listener; the
// caller shuts its http.Server down first or concurrently.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.mu.Lock()
	s.shutdown = true
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.out.Close(channels.ReasonServerShutdown)
	}
	done := make(chan struct{})
	go func() {
		for _, ss := range sessions {
			<-ss.out.done
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
