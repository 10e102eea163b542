package channels

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestBroadcastSelfAndEncodings(t *testing.T) {
	h := NewHub(HubConfig{})
	a, aw := newSub(h, "realtime:r", nil)
	b, bw := newSub(h, "realtime:r", nil)
	c, cw := newSub(h, "realtime:r", nil)
	c.Encoder = encB // cannot carry binary payloads
	other, ow := newSub(h, "realtime:other", nil)
	priv, pw := newSub(h, "realtime:r", nil)
	priv.Private = true
	for _, s := range []*Subscription{a, b, c, other, priv} {
		h.Subscribe(s)
	}
	h.Broadcast(a, &Broadcast{Event: "e", Payload: []byte(`{"n":1}`)})
	if len(aw.all()) != 0 || len(bw.all()) != 1 || len(cw.all()) != 1 || len(ow.all()) != 0 || len(pw.all()) != 0 {
		t.Fatalf("delivery counts a=%d b=%d c=%d other=%d private=%d", len(aw.all()), len(bw.all()), len(cw.all()), len(ow.all()), len(pw.all()))
	}
	a.Self = true
	h.Broadcast(a, &Broadcast{Event: "bin", Payload: []byte{1, 2}, Binary: true})
	if len(aw.all()) != 1 || len(bw.all()) != 2 || len(cw.all()) != 1 {
		t.Fatal("self delivery or binary routing wrong")
	}
	if c.Dropped(DropEncoding) != 1 {
		t.Fatalf("encoding drops %d", c.Dropped(DropEncoding))
	}
	// One encoding per encoder: b's and a's frames share bytes.
	if &aw.all()[0].Data[0] != &bw.all()[1].Data[0] {
		t.Fatal("frame encoded twice for one encoder")
	}
	h.Unsubscribe(b)
	h.Unsubscribe(b) // idempotent
	h.BroadcastTo("realtime:r", false, &Broadcast{Event: "x", Payload: []byte(`{}`)})
	if len(bw.all()) != 2 {
		t.Fatal("unsubscribed subscription still receives")
	}
}

type diff struct {
	Joins  map[string]struct{ Metas []map[string]any }
	Leaves map[string]struct{ Metas []map[string]any }
}

func lastDiff(t *testing.T, w *recWriter) diff {
	t.Helper()
	fs := w.all()
	for i := len(fs) - 1; i >= 0; i-- {
		if p := strings.SplitN(string(fs[i].Data), "|", 3); p[0] == "diff" {
			var d diff
			if err := json.Unmarshal([]byte(p[2]), &d); err != nil {
				t.Fatal(err)
			}
			return d
		}
	}
	t.Fatal("no diff")
	return diff{}
}

func TestPresenceTransitions(t *testing.T) {
	h := NewHub(HubConfig{})
	a, _ := newSub(h, "realtime:p", nil)
	a.PresenceKey = "alice"
	watcher, ww := newSub(h, "realtime:p", nil)
	watcher.SetPresence(true)
	h.Subscribe(a)
	h.Subscribe(watcher)
	if _, err := h.Track(a, []byte(`[1]`)); err != ErrPresencePayload {
		t.Fatalf("array payload: %v", err)
	}
	if changed, err := h.Track(a, []byte(`{"v":1}`)); !changed || err != nil {
		t.Fatal("first track")
	}
	d := lastDiff(t, ww)
	ref1 := d.Joins["alice"].Metas[0]["phx_ref"].(string)
	if len(ref1) != 16 || len(d.Leaves) != 0 {
		t.Fatalf("join diff %+v", d)
	}
	if changed, _ := h.Track(a, []byte(`{ "v": 1 }`)); changed {
		t.Fatal("same payload counted as a change")
	}
	h.Track(a, []byte(`{"v":2}`))
	d = lastDiff(t, ww)
	j := d.Joins["alice"].Metas[0]
	if j["phx_ref_prev"] != ref1 || d.Leaves["alice"].Metas[0]["phx_ref"] != ref1 || j["v"] != float64(2) {
		t.Fatalf("update diff %+v", d)
	}
	state := string(h.PresenceState(watcher))
	if strings.Contains(state, ref1) || !strings.Contains(state, `"v":2`) {
		t.Fatalf("state after re-track %s", state)
	}
	h.Unsubscribe(a)
	d = lastDiff(t, ww)
	if d.Leaves["alice"].Metas[0]["phx_ref"] != j["phx_ref"] || len(d.Joins) != 0 {
		t.Fatalf("leave diff %+v", d)
	}
	if s := string(h.PresenceState(watcher)); s != "{}" {
		t.Fatalf("state after leave %s", s)
	}
}

func TestPGIndexClassesAndCandidates(t *testing.T) {
	ix := newPGIndex()
	h := NewHub(HubConfig{})
	mk := func(who string, bs ...*activeBinding) *Subscription {
		s, _ := newSub(h, "realtime:i", user(who))
		ix.add(s, &pgState{active: bs})
		return s
	}
	b := func(schema, table string, id int64) *activeBinding {
		return &activeBinding{id: id, schema: schema, table: table}
	}
	a1 := mk("a", b("public", "todos", 1))
	a2 := mk("a", b("public", "todos", 1)) // same identity and binding: same class
	mk("b", b("public", "todos", 1))
	mk("c", b("public", "*", 2))
	mk("d", b("*", "*", 3))
	mk("e", b("public", "users", 4))
	both := mk("f", b("public", "todos", 5), b("*", "*", 6))
	if a1.class != a2.class || len(*a1.class.members.Load()) != 2 {
		t.Fatal("identical subscriptions are not one class")
	}
	got := ix.candidates("public", "todos", nil)
	if len(got) != 5 { // a, b, c, d, f (once)
		t.Fatalf("candidates %d classes", len(got))
	}
	ix.remove(both)
	ix.remove(a1)
	if got := ix.candidates("public", "todos", nil); len(got) != 4 || len(*a2.class.members.Load()) != 1 {
		t.Fatalf("after remove: %d classes", len(got))
	}
	if len(ix.classes) != 5 {
		t.Fatalf("%d classes left, want 5", len(ix.classes))
	}
}

// BenchmarkBroadcast measures fan-out of one broadcast to N subscribers of
// one topic (encode once, queue N times).
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			h := NewHub(HubConfig{})
			for i := 0; i < n; i++ {
				s, _ := newSub(h, "realtime:bench", nil)
				s.Writer = nopWriter{}
				h.Subscribe(s)
			}
			msg := &Broadcast{Event: "e", Payload: []byte(`{"hello":"world"}`)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.BroadcastTo("realtime:bench", false, msg)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkPGCandidates shows that finding the bindings of a change costs
// the same however many unrelated bindings exist.
func BenchmarkPGCandidates(b *testing.B) {
	for _, unrelated := range []int{0, 1000, 100000} {
		b.Run(fmt.Sprintf("unrelated=%d", unrelated), func(b *testing.B) {
			ix := newPGIndex()
			h := NewHub(HubConfig{})
			for i := 0; i < unrelated; i++ {
				s, _ := newSub(h, "realtime:i", nil)
				ix.add(s, &pgState{active: []*activeBinding{{schema: "public", table: fmt.Sprintf("t%d", i)}}})
			}
			for i := 0; i < 10; i++ {
				s, _ := newSub(h, "realtime:i", user(fmt.Sprint("u", i)))
				ix.add(s, &pgState{active: []*activeBinding{{schema: "public", table: "todos"}}})
			}
			var buf []*subscriberClass
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				buf = ix.candidates("public", "todos", buf[:0])
			}
			if len(buf) != 10 {
				b.Fatalf("%d candidates", len(buf))
			}
		})
	}
}

type nopWriter struct{}

func (nopWriter) Enqueue(Frame) bool { return true }
