package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/decoder"
)

//go:embed static
var staticFiles embed.FS

// Config configures an Inspector.
type Config struct {
	// Hub is the channel core to inspect. Required.
	Hub *channels.Hub
	// Verifier checks service_role JWTs presented instead of Token. Required.
	Verifier *auth.Verifier
	// Token is the operator token (--admin-token). Empty means only
	// service_role JWTs are accepted.
	Token string
	// Logger receives admin actions and refusals; nil discards them.
	Logger *slog.Logger
	// MaxBroadcastBytes limits the body of a test broadcast (default 256 KiB).
	MaxBroadcastBytes int
	// TailHeartbeat is the interval of comment lines on a quiet live tail
	// (default 15 s).
	TailHeartbeat time.Duration
	// TailBuffer is how many events a live tail may lag behind before it
	// loses some (default 512).
	TailBuffer int
	// NodeName names this node in /admin/api/cluster when no cluster state
	// is installed (SetCluster).
	NodeName string
}

// Inspector serves the admin API and page and collects pipeline metrics.
// Create it with New (one per Hub: it installs the hub's tap while a live
// tail is open). It is safe for concurrent use.
type Inspector struct {
	cfg      Config
	hub      *channels.Hub
	verifier *auth.Verifier
	log      *slog.Logger
	tokenSum [sha256.Size]byte // sha256 of cfg.Token; compared in constant time
	hasToken bool

	source atomic.Pointer[func() decoder.Status] // nil: no change source
	rls    atomic.Pointer[func() RLSStats]       // nil: no RLS evaluator
	// cluster is the cluster state getter; nil: a single node.
	cluster atomic.Pointer[func() ClusterState]
	// peers asks the other nodes of a cluster (peers.go); nil: none.
	peers atomic.Pointer[func(ctx context.Context, q []byte) []PeerAnswer]

	tail  tail
	stats pipelineStats

	handler http.Handler

	done      chan struct{} // closed by Close; ends live tails
	closeOnce sync.Once
}

// New returns an Inspector for cfg. It installs a tap on cfg.Hub only while
// a live tail (/admin/api/events) is open; message counts come from the
// hub's own counters. It panics if cfg.Hub or cfg.Verifier is nil.
func New(cfg Config) *Inspector {
	if cfg.Hub == nil || cfg.Verifier == nil {
		panic("admin: Config.Hub and Config.Verifier are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBroadcastBytes <= 0 {
		cfg.MaxBroadcastBytes = 256 * 1024
	}
	if cfg.TailHeartbeat <= 0 {
		cfg.TailHeartbeat = 15 * time.Second
	}
	if cfg.TailBuffer <= 0 {
		cfg.TailBuffer = 512
	}
	i := &Inspector{
		cfg:      cfg,
		hub:      cfg.Hub,
		verifier: cfg.Verifier,
		log:      cfg.Logger.With("component", "admin"),
		done:     make(chan struct{}),
	}
	if cfg.Token != "" {
		i.tokenSum, i.hasToken = sha256.Sum256([]byte(cfg.Token)), true
	}
	i.stats.init()
	i.tail.hub = cfg.Hub
	i.handler = i.routes()
	return i
}

// SetSource installs the status getter of the change source shown by
// /admin/api/replication and the replication metrics; nil removes it. It
// may be called at any time.
func (i *Inspector) SetSource(status func() decoder.Status) {
	if status == nil {
		i.source.Store(nil)
		return
	}
	i.source.Store(&status)
}

// Handler returns the handler of the page and the API. Mount it at
// "/admin/"; every path it serves starts with /admin/.
func (i *Inspector) Handler() http.Handler { return i.handler }

// Close ends every live tail so that an HTTP server shutdown need not wait
// for them. The API keeps answering. It is idempotent and does not block.
func (i *Inspector) Close() { i.closeOnce.Do(func() { close(i.done) }) }

func (i *Inspector) routes() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET /admin/api/channels", i.handleChannels)
	api.HandleFunc("GET /admin/api/channels/{name...}", i.handleChannel)
	api.HandleFunc("POST /admin/api/channels/{name}/broadcast", i.handleBroadcast)
	api.HandleFunc("DELETE /admin/api/subscribers/{id}", i.handleDisconnect)
	api.HandleFunc("GET /admin/api/replication", i.handleReplication)
	api.HandleFunc("GET /admin/api/cluster", i.handleCluster)
	api.HandleFunc("GET /admin/api/events", i.handleEvents)
	// A single project: no picker. With --projects the service answers
	// this path itself with every project (docs/projects.md "Inspector").
	api.HandleFunc("GET /admin/api/projects", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"projects":[]}` + "\n"))
	})
	api.HandleFunc("/admin/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such admin endpoint: "+r.Method+" "+r.URL.Path)
	})

	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic("admin: embedded page missing: " + err.Error())
	}
	page := http.StripPrefix("/admin", http.FileServer(http.FS(static)))

	protected := i.requireAuth(api)
	page = securePage(page)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/admin/api/"):
			protected.ServeHTTP(w, r)
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		default:
			page.ServeHTTP(w, r)
		}
	})
}

// securePage adds headers that keep the page self-contained: no inline
// script, no external origin, no framing.
func securePage(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// Errors of the bearer check; their text is the 401 body.
var (
	errNoBearer   = errors.New("missing bearer token: send Authorization: Bearer <admin token or service_role JWT>")
	errBadToken   = errors.New("invalid admin token")
	errNotService = errors.New("token role is not service_role")
)

// authorize accepts the operator token or a service_role JWT. The token is
// never logged or echoed.
func (i *Inspector) authorize(r *http.Request) error {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return errNoBearer
	}
	if i.hasToken {
		// Hashing both sides first makes the comparison constant-time in
		// the token's length too.
		sum := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(sum[:], i.tokenSum[:]) == 1 {
			return nil
		}
	}
	claims, err := i.verifier.Verify(tok)
	if err != nil {
		return errBadToken
	}
	if claims.Role != "service_role" {
		return errNotService
	}
	return nil
}

// Protect returns h behind the admin bearer check (the operator token or a
// service_role JWT), as the admin API; used for /metrics.
func (i *Inspector) Protect(h http.Handler) http.Handler { return i.requireAuth(h) }

func (i *Inspector) requireAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if err := i.authorize(r); err != nil {
			i.log.Debug("admin request refused", "remote_addr", r.RemoteAddr, "path", r.URL.Path, "err", err)
			w.Header().Set("WWW-Authenticate", `Bearer realm="realtime-admin"`)
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		h.ServeHTTP(w, r)
	})
}
