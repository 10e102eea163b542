package main

import (
	"strings"
	"testing"
)

func TestConfigBoundsAndDerivedValues(t *testing.T) {
	base := []string{"--url", "http://127.0.0.1:4000/", "--jwt-secret", "s"}
	c, err := parseConfig(append(base, "--load", "db-insert", "--db-url", "postgres://x", "--subscribers", "1000", "--users", "100", "--rls=false"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Table != "realtime_bench_open" || c.Event != "INSERT" || c.keys() != 100 {
		t.Fatalf("derived table %q event %q keys %d", c.Table, c.Event, c.keys())
	}
	if c.subscriberKey(5) != -1 {
		t.Fatal("open table without filter: every subscriber should see every row")
	}
	if got := c.wsURL("k"); got != "ws://127.0.0.1:4000/realtime/v1/websocket?apikey=k&vsn=2.0.0" {
		t.Fatalf("ws URL %s", got)
	}
	c, err = parseConfig(append(base, "--load", "broadcast-ws", "--channels", "2", "--senders", "8"))
	if err != nil || c.Senders != 2 {
		t.Fatalf("senders not clamped to channels: %v %+v", err, c)
	}
	for _, bad := range [][]string{
		{"--url", "ftp://x", "--jwt-secret", "s"},
		{"--url", "http://x"},
		append(base, "--duration", "11m"),
		append(base, "--subscribers", "100001"),
		append(base, "--rate", "2000000", "--duration", "60s"),
		append(base, "--load", "db-insert"),
		append(base, "--table", "x; drop table y"),
		append(base, "--transport", "sse", "--load", "join"),
	} {
		if _, err := parseConfig(bad); err == nil {
			t.Errorf("accepted %s", strings.Join(bad, " "))
		}
	}
}

func TestJoinPayloadCarriesTokenAndBinding(t *testing.T) {
	c, err := parseConfig([]string{"--url", "http://h", "--jwt-secret", "s", "--load", "db-update", "--db-url", "postgres://x", "--filter", "user"})
	if err != nil {
		t.Fatal(err)
	}
	p := string(joinPayload(c, 3, "tok"))
	for _, want := range []string{`"access_token":"tok"`, `"event":"UPDATE"`, `"table":"realtime_bench_rls"`, `"filter":"user_id=eq.00000000-0000-4000-8000-000000000003"`, `"private":false`} {
		if !strings.Contains(p, want) {
			t.Fatalf("join payload %s lacks %s", p, want)
		}
	}
}
