package channels

import (
	"fmt"
	"testing"
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
