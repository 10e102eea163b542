package main

import (
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openrealtime/realtime/internal/demo"
)

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// /metrics carries per-reason drop counters that tell what other
// subscribers were sent: on the public address it needs the admin token
// (or a service_role JWT); --metrics-addr serves it without one on its own
// listener. An anon key is refused.
func TestMetricsNeedTheAdminToken(t *testing.T) {
	keys, err := demo.MakeKeys(demo.NewSecret(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var o options
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	o.register(fs, "127.0.0.1:0")
	metricsAddr := freeAddr(t)
	if err := fs.Parse([]string{"--jwt-secret", keys.Secret, "--admin-token", "op-token-123", "--metrics-addr", metricsAddr, "--log-level", "error"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, &o, hooks{listening: func(a string) { addrc <- a }}) }()
	defer func() { cancel(); <-done }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("service did not start")
	}
	get := func(url, bearer string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, bearer := range []string{"", keys.Anon, "wrong-token"} {
		if code, body := get("http://"+addr+"/metrics", bearer); code != http.StatusUnauthorized || strings.Contains(body, "realtime_") {
			t.Fatalf("/metrics with bearer %.10q: %d %.200s", bearer, code, body)
		}
	}
	for _, bearer := range []string{"op-token-123", keys.Service} {
		if code, body := get("http://"+addr+"/metrics", bearer); code != http.StatusOK || !strings.Contains(body, "realtime_conn_refused_total") {
			t.Fatalf("/metrics with the admin credentials: %d %.200s", code, body)
		}
	}
	if code, body := get("http://"+metricsAddr+"/metrics", ""); code != http.StatusOK || !strings.Contains(body, "realtime_conn_open_connections") {
		t.Fatalf("--metrics-addr: %d %.200s", code, body)
	}
	// The separate listener serves nothing else.
	if code, _ := get("http://"+metricsAddr+"/admin/api/channels", "op-token-123"); code != http.StatusNotFound {
		t.Fatalf("--metrics-addr serves the admin API: %d", code)
	}
	// /healthz stays open.
	if code, _ := get("http://"+addr+"/healthz", ""); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
}
