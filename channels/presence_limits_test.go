package channels

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// presenceSubs subscribes n presence-keyed subscriptions to topic.
func presenceSubs(h *Hub, topic string, n int) []*Subscription {
	subs := make([]*Subscription, n)
	for i := range subs {
		s, _ := newSub(h, topic, nil)
		s.PresenceKey = fmt.Sprintf("user-%d", i)
		h.Subscribe(s)
		subs[i] = s
	}
	return subs
}

func stateMetas(t *testing.T, h *Hub, s *Subscription) int {
	t.Helper()
	var st map[string]struct{ Metas []json.RawMessage }
	if err := json.Unmarshal(h.PresenceState(s), &st); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range st {
		n += len(e.Metas)
	}
	return n
}

func TestPresenceMemberPayloadCap(t *testing.T) {
	h := NewHub(HubConfig{})
	s := presenceSubs(h, "realtime:cap", 1)[0]
	lim := PresenceLimits{MetaBytes: 100}
	ok := `{"p":"` + strings.Repeat("x", 92) + `"}` // 100 bytes
	if _, err := h.TrackWithin(s, []byte(ok), lim, nil); err != nil {
		t.Fatalf("payload at the cap: %v", err)
	}
	// Whitespace does not count: the payload is measured compacted.
	if _, err := h.TrackWithin(s, []byte(" { \"p\" : \"y\" } "+strings.Repeat(" ", 200)), lim, nil); err != nil {
		t.Fatalf("padded small payload: %v", err)
	}
	big := `{"p":"` + strings.Repeat("x", 93) + `"}`
	called := false
	if _, err := h.TrackWithin(s, []byte(big), lim, func() { called = true }); err != ErrPresenceTooLarge {
		t.Fatalf("payload over the cap: %v", err)
	}
	if called || !strings.Contains(string(h.PresenceState(s)), `"p":"y"`) {
		t.Fatalf("refused track changed presence (accepted called %v): %s", called, h.PresenceState(s))
	}
	if ErrPresenceTooLarge.Error() != "Track message size exceeded" {
		t.Fatal("member cap text is not Supabase's")
	}
}

func TestPresenceMembersCap(t *testing.T) {
	h := NewHub(HubConfig{})
	subs := presenceSubs(h, "realtime:room", 4)
	lim := PresenceLimits{Members: 3}
	for _, s := range subs[:3] {
		if _, err := h.TrackWithin(s, []byte(`{"a":1}`), lim, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.TrackWithin(subs[3], []byte(`{"a":1}`), lim, nil); err != ErrPresenceMembers {
		t.Fatalf("4th member: %v", err)
	}
	// Members already present may still update.
	if changed, err := h.TrackWithin(subs[0], []byte(`{"a":2}`), lim, nil); err != nil || !changed {
		t.Fatalf("update at the cap: %v %v", changed, err)
	}
	// A leave (untrack or unsubscribe) frees a place.
	h.Unsubscribe(subs[1])
	if _, err := h.TrackWithin(subs[3], []byte(`{"a":1}`), lim, nil); err != nil {
		t.Fatalf("after a leave: %v", err)
	}
	if n := stateMetas(t, h, subs[0]); n != 3 {
		t.Fatalf("%d metas, want 3", n)
	}
}

// Whatever members do, the channel's presence_state never exceeds the
// channel byte cap, and the accounting returns to zero when all leave.
func TestPresenceChannelBytesBoundState(t *testing.T) {
	h := NewHub(HubConfig{})
	subs := presenceSubs(h, "realtime:big", 40)
	watcher, _ := newSub(h, "realtime:big", nil)
	h.Subscribe(watcher)
	lim := PresenceLimits{MetaBytes: 4 << 10, ChannelBytes: 16 << 10}
	rng := rand.New(rand.NewSource(3))
	refused := 0
	for i := range 3000 {
		s := subs[rng.Intn(len(subs))]
		switch rng.Intn(4) {
		case 0:
			h.Untrack(s)
		default:
			p := fmt.Sprintf(`{"i":%d,"pad":%q}`, i, strings.Repeat("x", rng.Intn(3500)))
			if _, err := h.TrackWithin(s, []byte(p), lim, nil); err == ErrPresenceChannelBytes {
				refused++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if n := len(h.PresenceState(watcher)); n > lim.ChannelBytes {
			t.Fatalf("step %d: presence_state is %d bytes, cap %d", i, n, lim.ChannelBytes)
		}
	}
	if refused == 0 {
		t.Fatal("the channel byte cap never refused a track")
	}
	for _, s := range subs {
		h.Unsubscribe(s)
	}
	tp := h.lookup(TopicKey("realtime:big", false))
	if _, ok := presenceTotals.Load(tp); ok {
		t.Fatal("usage record kept after every member left")
	}
	// Empty again: a payload near the cap fits.
	s := presenceSubs(h, "realtime:big", 1)[0]
	if _, err := h.TrackWithin(s, []byte(`{"pad":"`+strings.Repeat("x", 4000)+`"}`), lim, nil); err != nil {
		t.Fatalf("track after everyone left: %v", err)
	}
}

// The 40 × 250 KiB attack of issue #13 with the default limits: the
// channel's presence_state stays within DefaultPresenceChannelBytes.
func TestPresenceDefaultsBoundTheReportedAttack(t *testing.T) {
	h := NewHub(HubConfig{})
	subs := presenceSubs(h, "realtime:attack", 40)
	payload := []byte(`{"pad":"` + strings.Repeat("x", 250<<10) + `"}`)
	small := []byte(`{"pad":"` + strings.Repeat("x", 60<<10) + `"}`)
	tooLarge, full := 0, 0
	for _, s := range subs {
		if _, err := h.Track(s, payload); err == ErrPresenceTooLarge {
			tooLarge++
		}
		if _, err := h.Track(s, small); err == ErrPresenceChannelBytes {
			full++
		}
	}
	if tooLarge != 40 || full == 0 {
		t.Fatalf("tooLarge=%d full=%d", tooLarge, full)
	}
	if n := len(h.PresenceState(subs[0])); n > DefaultPresenceChannelBytes {
		t.Fatalf("presence_state %d bytes", n)
	}
}
