package hop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/openrealtime/realtime/tools/envoycheck"
)

// Envoy's defaults where the config says nothing.
const (
	defaultRouteTimeout      = 15 * time.Second
	defaultStreamIdleTimeout = 5 * time.Minute
	defaultConnIdleTimeout   = time.Hour
	defaultConnectTimeout    = 5 * time.Second
	defaultHeadersTimeout    = 0
)

// Options adjust a Gateway for tests.
type Options struct {
	// Upstreams maps cluster names to host:port, replacing the cluster's
	// first endpoint. Clusters not listed keep the bootstrap's address.
	Upstreams map[string]string
	// IdleTimeout, when non-zero, replaces every stream idle timeout (the
	// routes' idle_timeout and the connection manager's
	// stream_idle_timeout) that is not 0 (disabled).
	IdleTimeout time.Duration
	// Logger receives proxy errors; nil discards them.
	Logger *slog.Logger
}

// Gateway serves the route table of one HTTP connection manager. Create it
// with New, serve with Serve, stop with Close. Safe for concurrent use.
type Gateway struct {
	routes         []*route
	connIdle       time.Duration
	headersTimeout time.Duration
	log            *slog.Logger

	idleClosed atomic.Int64 // connections closed by an idle timeout

	mu     sync.Mutex // guards srv, conns and closed
	srv    *http.Server
	conns  map[*idleConn]struct{}
	closed bool
}

// route is one compiled Envoy route.
type route struct {
	name      string
	match     func(path string) bool
	prefixLen int // length of the matched path or prefix, replaced by prefix_rewrite
	headers   []func(*http.Request) bool
	rewrite   *string
	timeout   time.Duration // 0: none
	idle      time.Duration // 0: none
	websocket bool
	proxy     *httputil.ReverseProxy
}

type connKey struct{}

// New builds a Gateway from the first HTTP connection manager of b. It fails
// on any route feature it cannot mirror faithfully.
func New(b *bootstrapv3.Bootstrap, opts Options) (*Gateway, error) {
	hcms, err := envoycheck.ConnectionManagers(b)
	if err != nil {
		return nil, err
	}
	if len(hcms) == 0 {
		return nil, errors.New("hop: the bootstrap has no HTTP connection manager")
	}
	h := hcms[0]
	if h.GetRouteConfig() == nil {
		return nil, errors.New("hop: only an inline route_config is supported")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{
		connIdle:       durationOr(h.GetCommonHttpProtocolOptions().GetIdleTimeout(), defaultConnIdleTimeout),
		headersTimeout: durationOr(h.GetRequestHeadersTimeout(), defaultHeadersTimeout),
		log:            log,
	}
	streamIdle := durationOr(h.GetStreamIdleTimeout(), defaultStreamIdleTimeout)
	hcmUpgrade := false
	for _, u := range h.GetUpgradeConfigs() {
		if strings.EqualFold(u.GetUpgradeType(), "websocket") {
			hcmUpgrade = u.GetEnabled() == nil || u.GetEnabled().GetValue()
		}
	}
	transports := map[string]*http.Transport{}
	vhs := h.GetRouteConfig().GetVirtualHosts()
	if len(vhs) != 1 || len(vhs[0].GetDomains()) != 1 || vhs[0].GetDomains()[0] != "*" {
		return nil, errors.New(`hop: only one virtual host with domains ["*"] is supported`)
	}
	for i, r := range vhs[0].GetRoutes() {
		rt, err := compileRoute(r, b, transports, opts, streamIdle, hcmUpgrade, log)
		if err != nil {
			return nil, fmt.Errorf("hop: routes[%d] (%s): %w", i, r.GetName(), err)
		}
		g.routes = append(g.routes, rt)
	}
	return g, nil
}

// durationOr is d, or def when d is unset.
func durationOr(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}

func compileRoute(r *routev3.Route, b *bootstrapv3.Bootstrap, transports map[string]*http.Transport,
	opts Options, streamIdle time.Duration, hcmUpgrade bool, log *slog.Logger) (*route, error) {
	m := r.GetMatch()
	if m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue() {
		return nil, errors.New("case-insensitive matching is not mirrored")
	}
	if len(m.GetQueryParameters()) > 0 || m.GetGrpc() != nil || m.GetRuntimeFraction() != nil ||
		m.GetTlsContext() != nil || len(m.GetDynamicMetadata()) > 0 || len(m.GetFilterState()) > 0 {
		return nil, errors.New("match has conditions the mirror does not implement")
	}
	rt := &route{name: r.GetName()}
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Path:
		p := ps.Path
		rt.prefixLen = len(p)
		rt.match = func(path string) bool { return path == p }
	case *routev3.RouteMatch_Prefix:
		p := ps.Prefix
		rt.prefixLen = len(p)
		rt.match = func(path string) bool { return strings.HasPrefix(path, p) }
	case *routev3.RouteMatch_PathSeparatedPrefix:
		p := ps.PathSeparatedPrefix
		rt.prefixLen = len(p)
		rt.match = func(path string) bool { return path == p || strings.HasPrefix(path, p+"/") }
	default:
		return nil, fmt.Errorf("path specifier %T is not mirrored", ps)
	}
	for _, hm := range m.GetHeaders() {
		f, err := headerMatcher(hm)
		if err != nil {
			return nil, err
		}
		rt.headers = append(rt.headers, f)
	}
	ra := r.GetRoute()
	if ra == nil {
		return nil, errors.New("only route actions (no redirect or direct_response) are mirrored")
	}
	if ra.GetCluster() == "" {
		return nil, errors.New("only a fixed cluster is mirrored (no weighted_clusters or cluster_header)")
	}
	if ra.GetRegexRewrite() != nil || ra.GetPathRewritePolicy() != nil || ra.GetHostRewriteSpecifier() != nil {
		return nil, errors.New("only prefix_rewrite is mirrored")
	}
	if ra.GetPrefixRewrite() != "" {
		s := ra.GetPrefixRewrite()
		rt.rewrite = &s
	}
	rt.timeout = durationOr(ra.GetTimeout(), defaultRouteTimeout)
	rt.idle = durationOr(ra.GetIdleTimeout(), streamIdle)
	if opts.IdleTimeout > 0 && rt.idle > 0 {
		rt.idle = opts.IdleTimeout
	}
	rt.websocket = hcmUpgrade
	for _, u := range ra.GetUpgradeConfigs() {
		if strings.EqualFold(u.GetUpgradeType(), "websocket") {
			rt.websocket = u.GetEnabled() == nil || u.GetEnabled().GetValue()
		}
	}
	target, tr, err := upstream(ra.GetCluster(), b, transports, opts)
	if err != nil {
		return nil, err
	}
	rt.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // Envoy keeps the client's :authority
			pr.SetXForwarded()
			if rt.rewrite != nil {
				pr.Out.URL.Path = *rt.rewrite + pr.In.URL.Path[rt.prefixLen:]
				pr.Out.URL.RawPath = ""
			}
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			status := http.StatusServiceUnavailable // Envoy: upstream connect error or reset
			if errors.Is(err, context.DeadlineExceeded) {
				status = http.StatusGatewayTimeout // Envoy: upstream request timeout
			}
			log.Debug("proxy error", "route", rt.name, "err", err)
			http.Error(w, http.StatusText(status), status)
		},
	}
	return rt, nil
}

// headerMatcher compiles the header matchers the shipped config uses.
func headerMatcher(hm *routev3.HeaderMatcher) (func(*http.Request) bool, error) {
	name := hm.GetName()
	get := func(r *http.Request) (string, bool) {
		if name == ":method" {
			return r.Method, true
		}
		vs := r.Header.Values(name)
		return strings.Join(vs, ","), len(vs) > 0
	}
	var test func(v string, present bool) bool
	switch {
	case hm.GetStringMatch() != nil:
		sm := hm.GetStringMatch()
		f, err := stringMatcher(sm)
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", name, err)
		}
		test = func(v string, present bool) bool { return present && f(v) }
	case hm.GetPresentMatch():
		test = func(_ string, present bool) bool { return present }
	default:
		return nil, fmt.Errorf("header %s: only string_match and present_match are mirrored", name)
	}
	invert := hm.GetInvertMatch()
	return func(r *http.Request) bool {
		v, present := get(r)
		return test(v, present) != invert
	}, nil
}

func stringMatcher(sm *matcherv3.StringMatcher) (func(string) bool, error) {
	if sm.GetIgnoreCase() {
		return nil, errors.New("ignore_case is not mirrored")
	}
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return func(v string) bool { return v == p.Exact }, nil
	case *matcherv3.StringMatcher_Prefix:
		return func(v string) bool { return strings.HasPrefix(v, p.Prefix) }, nil
	case *matcherv3.StringMatcher_Suffix:
		return func(v string) bool { return strings.HasSuffix(v, p.Suffix) }, nil
	case *matcherv3.StringMatcher_Contains:
		return func(v string) bool { return strings.Contains(v, p.Contains) }, nil
	case *matcherv3.StringMatcher_SafeRegex:
		// Envoy's safe_regex must match the whole value.
		re, err := regexp.Compile(`^(?:` + p.SafeRegex.GetRegex() + `)$`)
		if err != nil {
			return nil, err
		}
		return re.MatchString, nil
	}
	return nil, fmt.Errorf("string matcher %T is not mirrored", sm.GetMatchPattern())
}

// upstream resolves a cluster to its target URL and a shared transport.
func upstream(name string, b *bootstrapv3.Bootstrap, transports map[string]*http.Transport, opts Options) (*url.URL, *http.Transport, error) {
	var cl *clusterv3.Cluster
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			cl = c
		}
	}
	if cl == nil {
		return nil, nil, fmt.Errorf("cluster %q is not defined", name)
	}
	addr := opts.Upstreams[name]
	if addr == "" {
		eps := cl.GetLoadAssignment().GetEndpoints()
		if len(eps) == 0 || len(eps[0].GetLbEndpoints()) == 0 {
			return nil, nil, fmt.Errorf("cluster %q has no endpoint", name)
		}
		sa := eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		addr = net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
	}
	tr, ok := transports[name]
	if !ok {
		upIdle := defaultConnIdleTimeout
		if o, ok := cl.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; ok {
			var hpo upstreamhttpv3.HttpProtocolOptions
			if err := o.UnmarshalTo(&hpo); err != nil {
				return nil, nil, fmt.Errorf("cluster %q protocol options: %w", name, err)
			}
			upIdle = durationOr(hpo.GetCommonHttpProtocolOptions().GetIdleTimeout(), upIdle)
		}
		dialer := &net.Dialer{Timeout: durationOr(cl.GetConnectTimeout(), defaultConnectTimeout)}
		tr = &http.Transport{
			DialContext:         dialer.DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     upIdle,
		}
		transports[name] = tr
	}
	return &url.URL{Scheme: "http", Host: addr}, tr, nil
}

// ServeHTTP routes one request like Envoy's router would.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := g.find(r)
	if rt == nil {
		http.Error(w, "route not found", http.StatusNotFound)
		return
	}
	if isUpgrade(r) && (!strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !rt.websocket) {
		http.Error(w, "upgrade not allowed on this route", http.StatusForbidden)
		return
	}
	if c, ok := r.Context().Value(connKey{}).(*idleConn); ok {
		c.SetIdle(rt.idle)
		defer c.SetIdle(g.connIdle)
	}
	if rt.timeout > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), rt.timeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	rt.proxy.ServeHTTP(w, r)
}

func (g *Gateway) find(r *http.Request) *route {
	for _, rt := range g.routes {
		if !rt.match(r.URL.Path) {
			continue
		}
		ok := true
		for _, h := range rt.headers {
			ok = ok && h(r)
		}
		if ok {
			return rt
		}
	}
	return nil
}

func isUpgrade(r *http.Request) bool {
	if r.Header.Get("Upgrade") == "" {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// Serve accepts connections on ln until Close. Every connection is subject
// to the idle timeouts described in the package doc. It returns
// http.ErrServerClosed after Close.
func (g *Gateway) Serve(ln net.Listener) error {
	srv := &http.Server{
		Handler:           g,
		ReadHeaderTimeout: g.headersTimeout,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	g.mu.Lock()
	g.srv = srv
	g.mu.Unlock()
	return srv.Serve(&idleListener{Listener: ln, idle: g.connIdle, track: g.track})
}

// track registers a new connection so Close can end it even after net/http
// has handed it to a WebSocket (http.Server.Close does not close hijacked
// connections). It returns false once the Gateway is closed.
func (g *Gateway) track(c *idleConn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	if g.conns == nil {
		g.conns = map[*idleConn]struct{}{}
	}
	g.conns[c] = struct{}{}
	c.onExpire = func() {
		g.idleClosed.Add(1)
		g.log.Debug("idle timeout closed a connection", "remote", c.RemoteAddr().String())
	}
	c.onClose = func() {
		g.mu.Lock()
		delete(g.conns, c)
		g.mu.Unlock()
	}
	return true
}

// IdleClosed reports how many downstream connections the idle timeout has
// closed so far.
func (g *Gateway) IdleClosed() int64 { return g.idleClosed.Load() }

// Close stops Serve and closes every connection, hijacked WebSockets
// included. Safe to call more than once.
func (g *Gateway) Close() error {
	g.mu.Lock()
	g.closed = true
	srv := g.srv
	conns := make([]*idleConn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	var err error
	if srv != nil {
		err = srv.Close()
	}
	for _, c := range conns {
		c.Close()
	}
	return err
}
