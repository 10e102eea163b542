package channels

import (
	"context"
	"fmt"
	"testing"

	"github.com/openrealtime/realtime/decoder"
)

// fixedEncoder returns one prebuilt frame, so that a fan-out's allocations
// are the hub's own.
type fixedEncoder struct{ f Frame }

func (e *fixedEncoder) EncodeBroadcast(string, *Broadcast) (Frame, bool)           { return e.f, true }
func (e *fixedEncoder) EncodePresenceDiff(string, []byte) Frame                    { return e.f }
func (e *fixedEncoder) EncodePostgresChange(string, []int64, []byte, Cursor) Frame { return e.f }
func (e *fixedEncoder) EncodeSystem(string, []byte) Frame                          { return e.f }

// BenchmarkBroadcastObservation fans one broadcast out to 100 subscribers
// with and without a tap. With none installed (no live-tail watcher) the
// counters are the only observation and the fan-out allocates nothing.
func BenchmarkBroadcastObservation(b *testing.B) {
	for _, tap := range []bool{false, true} {
		b.Run(fmt.Sprintf("tap=%v", tap), func(b *testing.B) {
			h := NewHub(HubConfig{})
			enc := &fixedEncoder{Frame{Data: []byte("frame")}}
			for i := 0; i < 100; i++ {
				s, _ := newSub(h, "realtime:obs", nil)
				s.Writer, s.Encoder = nopWriter{}, enc
				h.Subscribe(s)
			}
			if tap {
				h.SetTap(func(TapEvent) {})
			}
			env := &Envelope{Kind: EnvelopeBroadcast, Topic: TopicKey("realtime:obs", false), Broadcast: &Broadcast{Event: "e", Payload: []byte(`{"hello":"world"}`)}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.deliverEnvelope(env)
			}
			if got := h.MessagesOut().Broadcast; got != int64(100*b.N) {
				b.Fatalf("MessagesOut().Broadcast = %d, want %d", got, 100*b.N)
			}
		})
	}
}

// postgres_changes frames are counted on their topic and in the hub totals
// whether or not a tap is installed; tap events are built only while one is.
func TestProcessCountsWithAndWithoutTap(t *testing.T) {
	h := NewHub(HubConfig{})
	auth := newFakeAuth()
	auth.visible = ownerVisible(map[string]string{"1": "alice", "2": "bob", "3": "alice", "4": "bob", "5": "alice", "6": "bob"})
	p := NewPGChanges(PGConfig{Hub: h, Auth: auth})
	for i := 0; i < 3; i++ {
		s, _ := newSub(h, "realtime:a", user("alice"))
		h.Subscribe(s)
		activate(t, p, s, `{"event":"*","schema":"public","table":"todos"}`)
	}
	var events []TapEvent
	for round, tap := range []bool{false, true, false} {
		if tap {
			h.SetTap(func(ev TapEvent) { events = append(events, ev) })
		} else {
			h.SetTap(nil)
		}
		batch := []decoder.Change{insertTodo(2*round+1, "alice", "x"), insertTodo(2*round+2, "bob", "y")}
		if err := p.Process(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.MessagesOut().PostgresChanges; got != 9 {
		t.Fatalf("MessagesOut().PostgresChanges = %d, want 9 (3 subscribers × 1 visible change × 3 batches)", got)
	}
	topics := h.Topics()
	if len(topics) != 1 || topics[0].MessagesOut != 9 || topics[0].LastActivity.IsZero() {
		t.Fatalf("topics = %+v", topics)
	}
	if len(events) != 1 || events[0].Kind != "postgres_changes" || events[0].Delivered != 3 || events[0].Topic != "realtime:a" {
		t.Fatalf("tap events = %+v, want one postgres_changes event delivered to 3", events)
	}
}
