package cluster

import (
	"strings"
	"testing"
)

func TestReplicas(t *testing.T) {
	cases := []struct {
		c    Config
		want int
	}{
		{Config{Embedded: true, ClusterListen: "127.0.0.1:1", Peers: []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}}, 3},
		{Config{Embedded: true, ClusterListen: "127.0.0.1:1", Peers: []string{"127.0.0.1:2"}}, 1},
		{Config{Embedded: true, ClusterListen: "127.0.0.1:1"}, 1},
		{Config{URL: "nats://x"}, 1},
		{Config{URL: "nats://x", Replicas: 3}, 3},
	}
	for i, c := range cases {
		if got := c.c.replicas(); got != c.want {
			t.Errorf("case %d: replicas %d, want %d", i, got, c.want)
		}
	}
}

func TestSlotName(t *testing.T) {
	long := "supabase_realtime_slot_" + strings.Repeat("p", 40)
	cases := []struct{ base, node, want string }{
		{"supabase_realtime_slot", "node-1", "supabase_realtime_slot_node_1"},
		{"s", "a_b", "s_a_b"},
	}
	for _, c := range cases {
		if got := SlotName(c.base, c.node); got != c.want {
			t.Errorf("SlotName(%q, %q) = %q, want %q", c.base, c.node, got, c.want)
		}
	}
	a, b := SlotName(long+"a", "node-1"), SlotName(long+"b", "node-1")
	if len(a) > maxSlotName || a == b || !strings.HasSuffix(a, "_node_1") {
		t.Fatalf("long bases: %q and %q", a, b)
	}
}

func TestValidate(t *testing.T) {
	good := Config{NodeName: "n1", Embedded: true, ClusterListen: "127.0.0.1:6222", Peers: []string{"127.0.0.1:6223"}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, adv := range []string{"10.0.0.5:6222", AdvertiseNone} {
		c := good
		c.Advertise = adv
		if err := c.Validate(); err != nil {
			t.Errorf("advertise %q: %v", adv, err)
		}
	}
	bad := map[string]Config{
		"both modes":   {NodeName: "n1", Embedded: true, ClusterListen: "127.0.0.1:1", URL: "nats://x"},
		"no mode":      {NodeName: "n1"},
		"node name":    {NodeName: "Node 1", URL: "nats://x"},
		"listen":       {NodeName: "n1", Embedded: true, ClusterListen: "6222"},
		"peer":         {NodeName: "n1", Embedded: true, ClusterListen: "127.0.0.1:1", Peers: []string{"x"}},
		"queue length": {NodeName: "n1", URL: "nats://x", QueueLen: -1},
		"replicas":     {NodeName: "n1", URL: "nats://x", Replicas: 7},
		"advertise":    {NodeName: "n1", Embedded: true, ClusterListen: "127.0.0.1:1", Advertise: "nowhere"},
		"cluster name": {NodeName: "n1", Embedded: true, ClusterListen: "127.0.0.1:1", ClusterName: "my cluster"},
	}
	for name, c := range bad {
		if c.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
