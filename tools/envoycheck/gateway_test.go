package envoycheck

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	compressorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/compressor/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// shippedConfig is the gateway config this module exists to check.
const shippedConfig = "../../docs/envoy/envoy.yaml"

// clusterConfig is the config for several realtime nodes behind one Envoy
// (docs/cluster.md); cluster_test.go checks what is particular to it.
const clusterConfig = "../../docs/envoy/envoy-cluster.yaml"

// realtimeConfigs are the shipped configs with realtime routes: every
// promise about those routes is checked on each of them.
var realtimeConfigs = []string{shippedConfig, clusterConfig}

// eachRealtimeConfig runs f on every config of realtimeConfigs, as a subtest
// named after the file.
func eachRealtimeConfig(t *testing.T, f func(t *testing.T, s *shipped)) {
	for _, path := range realtimeConfigs {
		t.Run(filepath.Base(path), func(t *testing.T) { f(t, loadConfig(t, path)) })
	}
}

// The service's own liveness timings, from cmd/realtime/flags.go and
// supabase-js defaults. Streaming routes must out-wait all of them so that
// the service, which understands heartbeats, decides when a client is gone.
const (
	serviceIdleTimeout  = 60 * time.Second // realtime --idle-timeout default
	clientHeartbeat     = 25 * time.Second // supabase-js heartbeatIntervalMs default
	sseHeartbeat        = 15 * time.Second // realtime --sse-heartbeat default
	envoyDefaultBreaker = 1024             // Envoy's default max_connections / max_requests
)

// upstreamUntouched are the retry conditions that fire only when the request
// cannot have reached the upstream application.
var upstreamUntouched = map[string]bool{"connect-failure": true, "refused-stream": true, "reset-before-request": true}

type shipped struct {
	b        *bootstrapv3.Bootstrap
	hcm      *hcmv3.HttpConnectionManager
	vh       *routev3.VirtualHost
	routes   map[string]*routev3.Route
	clusters map[string]*clusterv3.Cluster
}

func loadShipped(t *testing.T) *shipped {
	t.Helper()
	return loadConfig(t, shippedConfig)
}

func loadConfig(t *testing.T, path string) *shipped {
	t.Helper()
	b, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hcms, err := ConnectionManagers(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(hcms) != 1 {
		t.Fatalf("want one HTTP connection manager, got %d", len(hcms))
	}
	s := &shipped{b: b, hcm: hcms[0], routes: map[string]*routev3.Route{}, clusters: map[string]*clusterv3.Cluster{}}
	vhs := s.hcm.GetRouteConfig().GetVirtualHosts()
	if len(vhs) != 1 {
		t.Fatalf("want one virtual host, got %d", len(vhs))
	}
	s.vh = vhs[0]
	for _, r := range s.vh.GetRoutes() {
		if r.GetName() == "" {
			t.Fatalf("every route needs a name (used in access logs and here): %v", r.GetMatch())
		}
		s.routes[r.GetName()] = r
	}
	for _, c := range b.GetStaticResources().GetClusters() {
		s.clusters[c.GetName()] = c
	}
	return s
}

func (s *shipped) route(t *testing.T, name string) *routev3.Route {
	t.Helper()
	r, ok := s.routes[name]
	if !ok {
		t.Fatalf("no route named %q", name)
	}
	return r
}

func TestShippedConfigPassesChecks(t *testing.T) {
	for _, path := range realtimeConfigs {
		if _, probs := CheckFile(path); len(probs) > 0 {
			t.Errorf("%s does not pass the checks:\n%s", path, render(probs))
		}
	}
}

func TestShippedWebSocketOnlyOnItsRoute(t *testing.T) {
	eachRealtimeConfig(t, func(t *testing.T, s *shipped) {
		for _, u := range s.hcm.GetUpgradeConfigs() {
			if strings.EqualFold(u.GetUpgradeType(), "websocket") && (u.GetEnabled() == nil || u.GetEnabled().GetValue()) {
				t.Errorf("websocket upgrades are enabled for the whole connection manager")
			}
		}
		var enabled []string
		for _, r := range s.vh.GetRoutes() {
			for _, u := range r.GetRoute().GetUpgradeConfigs() {
				if strings.EqualFold(u.GetUpgradeType(), "websocket") && (u.GetEnabled() == nil || u.GetEnabled().GetValue()) {
					enabled = append(enabled, r.GetName())
				}
			}
		}
		if len(enabled) != 1 || enabled[0] != "realtime_websocket" {
			t.Fatalf("websocket upgrades enabled on %v, want only realtime_websocket", enabled)
		}
		if p := s.route(t, "realtime_websocket").GetMatch().GetPath(); p != "/realtime/v1/websocket" {
			t.Errorf("realtime_websocket matches path %q", p)
		}
	})
}

func TestShippedStreamingRoutes(t *testing.T) {
	eachRealtimeConfig(t, func(t *testing.T, s *shipped) {
		if s.vh.GetRetryPolicy() != nil || s.vh.GetHedgePolicy() != nil {
			t.Errorf("the virtual host has a retry or hedge policy; streaming routes would inherit it")
		}
		for _, f := range s.hcm.GetHttpFilters() {
			if strings.Contains(f.GetTypedConfig().GetTypeUrl(), "filters.http.buffer.") ||
				strings.Contains(f.GetTypedConfig().GetTypeUrl(), "file_system_buffer") {
				t.Errorf("HTTP filter %s buffers whole bodies; event streams must pass through", f.GetName())
			}
		}
		for name, path := range map[string]string{"realtime_websocket": "/realtime/v1/websocket", "realtime_sse": "/realtime/v1/sse"} {
			r := s.route(t, name)
			ra := r.GetRoute()
			if r.GetMatch().GetPath() != path {
				t.Errorf("%s: matches %v, want path %s", name, r.GetMatch(), path)
			}
			if ra.GetTimeout() == nil || ra.GetTimeout().AsDuration() != 0 {
				t.Errorf("%s: route timeout %v, want 0s (unset means 15s and would cut the stream)", name, ra.GetTimeout())
			}
			idle := ra.GetIdleTimeout().AsDuration()
			if ra.GetIdleTimeout() == nil || idle < 2*serviceIdleTimeout || idle < 4*clientHeartbeat || idle < 4*sseHeartbeat {
				t.Errorf("%s: idle_timeout %v; want one that outlasts the service's %v idle timeout twice "+
					"and four heartbeats", name, ra.GetIdleTimeout(), serviceIdleTimeout)
			}
			if ra.GetRetryPolicy() != nil || ra.GetHedgePolicy() != nil {
				t.Errorf("%s: has a retry or hedge policy", name)
			}
			if ra.GetMaxStreamDuration() != nil {
				t.Errorf("%s: max_stream_duration would end long-lived streams", name)
			}
			var cp compressorv3.CompressorPerRoute
			cfg := r.GetTypedPerFilterConfig()["envoy.filters.http.compressor"]
			if cfg == nil || cfg.UnmarshalTo(&cp) != nil || !cp.GetDisabled() {
				t.Errorf("%s: compression is not disabled on this route", name)
			}
			if _, ok := r.GetTypedPerFilterConfig()["envoy.filters.http.local_ratelimit"]; ok {
				t.Errorf("%s: rate limited", name)
			}
			if ra.GetCluster() != "realtime" {
				t.Errorf("%s: cluster %q", name, ra.GetCluster())
			}
		}
		if s.hcm.GetRequestTimeout().AsDuration() != 0 ||
			s.hcm.GetCommonHttpProtocolOptions().GetMaxStreamDuration() != nil ||
			s.hcm.GetCommonHttpProtocolOptions().GetMaxConnectionDuration() != nil {
			t.Errorf("a connection-manager-wide request_timeout, max_stream_duration or max_connection_duration would end long-lived streams")
		}
	})
}

func TestShippedBroadcastRateLimit(t *testing.T) {
	eachRealtimeConfig(t, func(t *testing.T, s *shipped) {
		r := s.route(t, "realtime_broadcast")
		if r.GetMatch().GetPathSeparatedPrefix() != "/realtime/v1/api/broadcast" {
			t.Errorf("realtime_broadcast matches %v", r.GetMatch())
		}
		var rl localratelimitv3.LocalRateLimit
		cfg := r.GetTypedPerFilterConfig()["envoy.filters.http.local_ratelimit"]
		if cfg == nil || cfg.UnmarshalTo(&rl) != nil {
			t.Fatalf("realtime_broadcast has no local rate limit config")
		}
		if rl.GetTokenBucket().GetMaxTokens() == 0 || rl.GetFilterEnforced().GetDefaultValue().GetNumerator() == 0 {
			t.Errorf("the broadcast rate limit is not enforced: %v", &rl)
		}
		// The filter must be in the chain for the per-route config to apply.
		found := false
		for _, f := range s.hcm.GetHttpFilters() {
			found = found || f.GetName() == "envoy.filters.http.local_ratelimit"
		}
		if !found {
			t.Errorf("envoy.filters.http.local_ratelimit is not in the HTTP filter chain")
		}
	})
}

func TestShippedServicesRewritePrefixes(t *testing.T) {
	s := loadShipped(t)
	want := map[string]string{"/rest/v1/": "postgrest", "/auth/v1/": "gotrue", "/storage/v1/": "storage", "/functions/v1/": "functions"}
	seen := map[string]int{}
	for _, r := range s.vh.GetRoutes() {
		p := r.GetMatch().GetPrefix()
		cluster, ok := want[p]
		if !ok {
			continue
		}
		seen[p]++
		if r.GetRoute().GetCluster() != cluster || r.GetRoute().GetPrefixRewrite() != "/" {
			t.Errorf("%s: cluster %q rewrite %q, want %q and \"/\"", r.GetName(), r.GetRoute().GetCluster(), r.GetRoute().GetPrefixRewrite(), cluster)
		}
	}
	for p := range want {
		if seen[p] == 0 {
			t.Errorf("no route for %s", p)
		}
	}
	for name, port := range map[string]uint32{"realtime": 4000, "postgrest": 3000, "gotrue": 9999, "storage": 5000, "functions": 9000} {
		c, ok := s.clusters[name]
		if !ok {
			t.Errorf("no cluster %s", name)
			continue
		}
		sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		if sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != port {
			t.Errorf("cluster %s at %s:%d, want 127.0.0.1:%d", name, sa.GetAddress(), sa.GetPortValue(), port)
		}
	}
}

// TestShippedRetriesAreSafe: a route may retry after the request reached the
// upstream only if its match admits nothing but idempotent methods.
func TestShippedRetriesAreSafe(t *testing.T) {
	eachRealtimeConfig(t, func(t *testing.T, s *shipped) {
		for _, r := range s.vh.GetRoutes() {
			rp := r.GetRoute().GetRetryPolicy()
			if rp == nil {
				continue
			}
			if idempotentOnly(t, r.GetMatch()) {
				continue
			}
			for _, cond := range strings.Split(rp.GetRetryOn(), ",") {
				if !upstreamUntouched[strings.TrimSpace(cond)] {
					t.Errorf("%s: admits non-idempotent methods but retries on %q", r.GetName(), cond)
				}
			}
			if len(rp.GetRetriableStatusCodes()) > 0 || len(rp.GetRetriableHeaders()) > 0 {
				t.Errorf("%s: admits non-idempotent methods but retries on status codes or headers", r.GetName())
			}
		}
	})
}

// idempotentOnly reports whether m restricts :method to idempotent methods.
func idempotentOnly(t *testing.T, m *routev3.RouteMatch) bool {
	t.Helper()
	for _, h := range m.GetHeaders() {
		if h.GetName() != ":method" || h.GetInvertMatch() {
			continue
		}
		sm := h.GetStringMatch()
		admits := func(method string) bool {
			switch {
			case sm.GetExact() != "":
				return sm.GetExact() == method
			case sm.GetSafeRegex() != nil:
				return regexp.MustCompile(sm.GetSafeRegex().GetRegex()).MatchString(method)
			}
			return true
		}
		ok := true
		for _, method := range []string{"POST", "PATCH", "CONNECT"} {
			if admits(method) {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func TestShippedRealtimeCluster(t *testing.T) {
	eachRealtimeConfig(t, func(t *testing.T, s *shipped) {
		c := s.clusters["realtime"]
		if c == nil {
			t.Fatal("no realtime cluster")
		}
		var def *clusterv3.CircuitBreakers_Thresholds
		for _, th := range c.GetCircuitBreakers().GetThresholds() {
			if th.GetPriority() == corev3.RoutingPriority_DEFAULT {
				def = th
			}
		}
		if def == nil {
			t.Fatal("realtime has no DEFAULT circuit breaker thresholds; Envoy's defaults allow 1,024 connections")
		}
		for what, v := range map[string]uint32{
			"max_connections": def.GetMaxConnections().GetValue(), "max_requests": def.GetMaxRequests().GetValue(),
		} {
			if v <= 10*envoyDefaultBreaker {
				t.Errorf("realtime circuit breaker %s = %d; each WebSocket or SSE client holds one for its lifetime", what, v)
			}
		}
		hc := c.GetHealthChecks()
		if len(hc) != 1 || hc[0].GetHttpHealthCheck().GetPath() != "/healthz" {
			t.Errorf("realtime health checks %v, want one HTTP check on /healthz", hc)
		}
		if c.GetOutlierDetection() == nil {
			t.Errorf("realtime has no outlier detection")
		}
		if c.GetCloseConnectionsOnHostHealthFailure() {
			t.Errorf("close_connections_on_host_health_failure would drop every WebSocket on one failed probe")
		}
	})
}

func TestShippedCORSAndAccessLog(t *testing.T) {
	eachRealtimeConfig(t, func(t *testing.T, s *shipped) {
		filters := s.hcm.GetHttpFilters()
		if len(filters) == 0 || filters[0].GetName() != "envoy.filters.http.cors" {
			t.Errorf("the CORS filter must come first so preflights are answered before rate limiting")
		}
		var pol corsv3.CorsPolicy
		cfg := s.vh.GetTypedPerFilterConfig()["envoy.filters.http.cors"]
		if cfg == nil || cfg.UnmarshalTo(&pol) != nil || len(pol.GetAllowOriginStringMatch()) == 0 {
			t.Errorf("the virtual host has no CORS policy")
		}
		for _, h := range []string{"authorization", "apikey", "x-client-info", "content-type"} {
			if !strings.Contains(pol.GetAllowHeaders(), h) {
				t.Errorf("CORS allow_headers lacks %s (supabase-js sends it)", h)
			}
		}
		if len(s.hcm.GetAccessLog()) == 0 {
			t.Fatalf("no access log")
		}
		// What the formats contain is Check's business (RuleAccessLogSecret);
		// here only that they are JSON.
		for _, al := range s.hcm.GetAccessLog() {
			var out streamv3.StdoutAccessLog
			if err := al.GetTypedConfig().UnmarshalTo(&out); err != nil {
				t.Errorf("access log %s is not the stdout logger: %v", al.GetName(), err)
				continue
			}
			if out.GetLogFormat().GetJsonFormat() == nil {
				t.Errorf("access log %s is not JSON", al.GetName())
			}
		}
	})
}
