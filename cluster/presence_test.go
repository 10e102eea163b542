package cluster

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/openrealtime/realtime/channels"
)

// presenceKeys returns the sorted keys of a presence_state payload with
// the number of metas of each.
func presenceKeys(t *testing.T, state []byte) string {
	t.Helper()
	var st map[string]struct {
		Metas []map[string]any `json:"metas"`
	}
	if err := json.Unmarshal(state, &st); err != nil {
		t.Fatalf("bad presence_state %s", state)
	}
	var keys []string
	for k, v := range st {
		for _, m := range v.Metas {
			if m["phx_ref"] == nil || m["phx_ref_prev"] != nil {
				t.Fatalf("meta %v in %s", m, state)
			}
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// awaitState polls the presence_state s would get until it lists want.
func awaitState(t *testing.T, tn *testNode, s *channels.Subscription, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := presenceKeys(t, tn.hub.PresenceState(s))
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence_state lists %q, want %q", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nextDiff returns the next presence diff r received.
func nextDiff(t *testing.T, r *recorder) string {
	t.Helper()
	for {
		select {
		case f := <-r.got:
			if strings.HasPrefix(f, "diff:") {
				return strings.TrimPrefix(f, "diff:")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no presence diff")
		}
	}
}

// Presence is cluster-wide: a joiner on another node learns the members
// already there (snapshot), diffs flow between nodes, a clean untrack
// leaves everywhere, and a node that goes silent takes its members with
// it after the heartbeat expiry.
func TestPresenceAcrossNodes(t *testing.T) {
	nodes := startNodes(t, 3)
	const topic = "realtime:pres"
	track := func(tn *testNode, key string) (*channels.Subscription, *recorder) {
		r := newRecorder()
		s := &channels.Subscription{ID: tn.hub.NextID(), Topic: topic, Name: topic, PresenceKey: key, Writer: r, Encoder: enc{}}
		tn.hub.Subscribe(s)
		if _, err := tn.hub.Track(s, []byte(`{"who":"`+key+`"}`)); err != nil {
			t.Fatal(err)
		}
		return s, r
	}
	a, _ := track(nodes[0], "alice")
	b, rb := track(nodes[1], "bob")
	// bob's node took a snapshot of alice; alice's node got bob's join.
	awaitState(t, nodes[1], b, "alice,bob")
	awaitState(t, nodes[0], a, "alice,bob")

	c, rc := track(nodes[2], "carol")
	awaitState(t, nodes[2], c, "alice,bob,carol")
	awaitState(t, nodes[1], b, "alice,bob,carol")
	for d := nextDiff(t, rb); !strings.Contains(d, `"carol"`); d = nextDiff(t, rb) {
	}

	// A clean leave on node 1 reaches the others as a leave diff.
	nodes[0].hub.Untrack(a)
	for d := nextDiff(t, rc); !strings.Contains(d, `"leaves":{"alice"`); d = nextDiff(t, rc) {
	}
	awaitState(t, nodes[2], c, "bob,carol")

	// Node 2 goes silent without leaving: its member leaves the others
	// once its heartbeats stop.
	nodes[1].node.Close()
	for d := nextDiff(t, rc); !strings.Contains(d, `"leaves":{"bob"`); d = nextDiff(t, rc) {
	}
	awaitState(t, nodes[2], c, "carol")
	awaitState(t, nodes[0], a, "carol")
}
