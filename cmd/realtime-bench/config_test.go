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
	if got := c.wsURL(0, "k"); got != "ws://127.0.0.1:4000/realtime/v1/websocket?apikey=k&vsn=2.0.0" {
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

func TestURLListSpreadsClientsOverNodes(t *testing.T) {
	c, err := parseConfig([]string{"--url", "http://127.0.0.1:4000, http://127.0.0.1:4001/,https://h:4002/base", "--jwt-secret", "s",
		"--load", "broadcast-rest", "--subscribers", "7", "--channels", "2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.URLs) != 3 || c.target() != "http://127.0.0.1:4000,http://127.0.0.1:4001,https://h:4002/base" {
		t.Fatalf("nodes %d target %s", len(c.URLs), c.target())
	}
	for k, want := range map[int]string{
		0: "ws://127.0.0.1:4000/realtime/v1/websocket?apikey=k&vsn=2.0.0",
		1: "ws://127.0.0.1:4001/realtime/v1/websocket?apikey=k&vsn=2.0.0",
		2: "wss://h:4002/base/realtime/v1/websocket?apikey=k&vsn=2.0.0",
		3: "ws://127.0.0.1:4000/realtime/v1/websocket?apikey=k&vsn=2.0.0",
		5: "wss://h:4002/base/realtime/v1/websocket?apikey=k&vsn=2.0.0",
	} {
		if got := c.wsURL(k, "k"); got != want {
			t.Errorf("client %d: %s, want %s", k, got, want)
		}
	}
	if got := c.endpoint(4, "/realtime/v1/api/broadcast"); got != "http://127.0.0.1:4001/realtime/v1/api/broadcast" {
		t.Errorf("sender 4: %s", got)
	}
	// Even spread: 7 subscribers over 3 nodes are 3, 2, 2.
	counts := make([]int, len(c.URLs))
	for i := range c.Subscribers {
		counts[c.nodeFor(i)]++
	}
	if counts[0] != 3 || counts[1] != 2 || counts[2] != 2 {
		t.Errorf("spread %v", counts)
	}

	one, err := parseConfig([]string{"--url", "http://127.0.0.1:4000/", "--jwt-secret", "s"})
	if err != nil {
		t.Fatal(err)
	}
	for k := range 5 {
		if one.nodeFor(k) != 0 || one.endpoint(k, "/x") != "http://127.0.0.1:4000/x" {
			t.Fatalf("single URL: client %d on node %d (%s)", k, one.nodeFor(k), one.endpoint(k, "/x"))
		}
	}
	if one.target() != "http://127.0.0.1:4000" {
		t.Fatalf("single target %s", one.target())
	}

	for _, bad := range []string{
		"http://a:1,,http://b:2",
		"http://a:1,",
		"http://a:1,ftp://b:2",
		"http://a:1,http://a:1/",
		"http://a:1,b:2",
		strings.Repeat("http://a:1,", maxNodes) + "http://z:1",
	} {
		if _, err := parseConfig([]string{"--url", bad, "--jwt-secret", "s"}); err == nil {
			t.Errorf("accepted --url %s", bad)
		}
	}
	if _, err := parseConfig([]string{"--url", "http://127.0.0.1:1,http://10.0.0.1:2", "--jwt-secret", "s", "--load", "soak", "--db-url", "postgres://x"}); err == nil {
		t.Error("soak accepted a node off loopback")
	}
}
