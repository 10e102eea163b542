package envoycheck

import (
	"fmt"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
)

// failoverTarget bounds how long a dead node may stay in rotation (issue
// 14's failover target; docs/cluster.md "Behind Envoy").
const failoverTarget = 5 * time.Second

// TestClusterConfigRoutesAreTheGateways: the cluster config serves exactly
// the realtime routes of envoy.yaml, in the same order, with the same
// settings; the only difference allowed is that retries pick another node.
func TestClusterConfigRoutesAreTheGateways(t *testing.T) {
	gw, cl := loadShipped(t), loadConfig(t, clusterConfig)
	var want []*routev3.Route
	for _, r := range gw.vh.GetRoutes() {
		if strings.HasPrefix(r.GetName(), "realtime_") {
			want = append(want, r)
		}
	}
	got := cl.vh.GetRoutes()
	if len(got) != len(want) {
		t.Fatalf("cluster config has %d routes, the gateway %d realtime routes", len(got), len(want))
	}
	for i, r := range got {
		g := proto.Clone(r).(*routev3.Route)
		if rp := g.GetRoute().GetRetryPolicy(); rp != nil {
			if len(rp.GetRetryHostPredicate()) != 1 || rp.GetRetryHostPredicate()[0].GetName() != "envoy.retry_host_predicates.previous_hosts" ||
				rp.GetHostSelectionRetryMaxAttempts() < 2 {
				t.Errorf("%s: a retry may land on the node that just failed (no previous_hosts predicate)", r.GetName())
			}
			rp.RetryHostPredicate, rp.HostSelectionRetryMaxAttempts = nil, 0
		}
		if !proto.Equal(g, want[i]) {
			t.Errorf("route %d (%s) differs from the gateway's %s:\n got %v\nwant %v", i, r.GetName(), want[i].GetName(), g, want[i])
		}
	}
}

// TestClusterConfigConnectionManagerIsTheGateways: timeouts, upgrades,
// filters, CORS and access logs are those of envoy.yaml.
func TestClusterConfigConnectionManagerIsTheGateways(t *testing.T) {
	gw, cl := loadShipped(t), loadConfig(t, clusterConfig)
	strip := func(h *hcmv3.HttpConnectionManager) *hcmv3.HttpConnectionManager {
		h = proto.Clone(h).(*hcmv3.HttpConnectionManager)
		h.StatPrefix = ""
		h.RouteSpecifier = nil
		return h
	}
	if !proto.Equal(strip(gw.hcm), strip(cl.hcm)) {
		t.Errorf("the connection managers differ beyond stat_prefix and routes")
	}
	gvh := proto.Clone(gw.vh).(*routev3.VirtualHost)
	cvh := proto.Clone(cl.vh).(*routev3.VirtualHost)
	gvh.Name, gvh.Routes, cvh.Name, cvh.Routes = "", nil, "", nil
	if !proto.Equal(gvh, cvh) {
		t.Errorf("the virtual hosts differ beyond name and routes: %v vs %v", gvh, cvh)
	}
}

func TestClusterConfigNodes(t *testing.T) {
	cl := loadConfig(t, clusterConfig)
	if len(cl.clusters) != 1 || cl.clusters["realtime"] == nil {
		t.Fatalf("want exactly one upstream cluster, realtime; got %d", len(cl.clusters))
	}
	c := cl.clusters["realtime"]
	var addrs, names []string
	for _, lle := range c.GetLoadAssignment().GetEndpoints() {
		for _, e := range lle.GetLbEndpoints() {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			addrs = append(addrs, fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()))
			names = append(names, e.GetEndpoint().GetHostname())
		}
	}
	// The addresses `realtime dev --nodes 3` listens on by default.
	if want := []string{"127.0.0.1:4000", "127.0.0.1:4001", "127.0.0.1:4002"}; fmt.Sprint(addrs) != fmt.Sprint(want) {
		t.Errorf("endpoints %v, want %v", addrs, want)
	}
	if want := []string{"node-1", "node-2", "node-3"}; fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("endpoint host names %v, want the node names %v", names, want)
	}
	if c.GetLbPolicy() != clusterv3.Cluster_LEAST_REQUEST {
		t.Errorf("lb_policy %v; least-request balances long-lived sockets over the nodes", c.GetLbPolicy())
	}
	if th := c.GetCommonLbConfig().GetHealthyPanicThreshold(); th == nil || th.GetValue() != 0 {
		t.Errorf("healthy_panic_threshold %v; Envoy's default 50%% sends clients to dead nodes once two of three are down", th)
	}
	hc := c.GetHealthChecks()
	if len(hc) != 1 || hc[0].GetHttpHealthCheck().GetPath() != "/healthz" {
		t.Fatalf("health checks %v, want one HTTP check on /healthz", hc)
	}
	h := hc[0]
	worst := time.Duration(h.GetUnhealthyThreshold().GetValue())*(h.GetInterval().AsDuration()+h.GetIntervalJitter().AsDuration()) + h.GetTimeout().AsDuration()
	if worst > failoverTarget {
		t.Errorf("a dead node stays in rotation up to %v after its last answer; want at most %v", worst, failoverTarget)
	}
	if h.GetTimeout().AsDuration() >= h.GetInterval().AsDuration() {
		t.Errorf("health check timeout %v is not below its interval %v", h.GetTimeout().AsDuration(), h.GetInterval().AsDuration())
	}
	if h.GetUnhealthyThreshold().GetValue() < 2 {
		t.Errorf("unhealthy_threshold %d: one slow probe would take a node out", h.GetUnhealthyThreshold().GetValue())
	}
	if c.GetOutlierDetection().GetMaxEjectionPercent().GetValue() >= 67 {
		t.Errorf("outlier detection may eject two of three nodes")
	}
}
