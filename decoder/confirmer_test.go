package decoder

import (
	"context"
	"errors"
	"testing"
)

// A Confirmer's error ends the session, from an idle keepalive as from a
// delivered batch: the owner can no longer make positions safe (a cluster's
// slot holder whose change stream stopped acknowledging), and the slot must
// go to a reader that can, even when no further change comes.
func TestConfirmerErrorEndsSession(t *testing.T) {
	failure := errors.New("stream stopped acknowledging")
	var handed []LSN
	l := NewLogical(LogicalConfig{Slot: "s", Publication: "p", Confirmer: func(pos LSN) error {
		handed = append(handed, pos)
		if pos >= 0x2000 {
			return failure
		}
		return nil
	}})
	s := &stream{l: l, sink: func(context.Context, []Change) error { return nil }}
	events := make(chan event, 4)
	events <- event{keepalive: true, walEnd: 0x1000}
	events <- event{keepalive: true, walEnd: 0x2000}
	events <- event{keepalive: true, walEnd: 0x3000}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.loop(ctx, ctx, events); !errors.Is(err, failure) {
		t.Fatalf("loop returned %v, want the Confirmer's error", err)
	}
	if len(handed) != 2 || handed[0] != 0x1000 || handed[1] != 0x2000 {
		t.Fatalf("Confirmer got %v, want [0/1000 0/2000]", handed)
	}
	if l.confirmed.Load() != 0 {
		t.Fatalf("the source confirmed %s itself", LSN(l.confirmed.Load()))
	}
}
