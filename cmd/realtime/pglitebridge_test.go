package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/openrealtime/realtime/decoder"
)

func TestRedeliveryFilter(t *testing.T) {
	rel := &decoder.Relation{Schema: "public", Table: "todos"}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ch := func(pos uint64, at time.Time) decoder.Change {
		return decoder.Change{Kind: decoder.Insert, Rel: rel, CommitTime: at, Position: pos}
	}
	var got []uint64
	fail := false
	f := newRedeliveryFilter(func(_ context.Context, b []decoder.Change) error {
		if fail {
			return errors.New("fan-out failed")
		}
		for _, c := range b {
			got = append(got, c.Position)
		}
		return nil
	})
	ctx := context.Background()
	if err := f.Process(ctx, []decoder.Change{ch(1, t0), ch(2, t0), ch(3, t0)}); err != nil {
		t.Fatal(err)
	}
	// A failed fan-out is not remembered: the source sends the batch again.
	fail = true
	if err := f.Process(ctx, []decoder.Change{ch(4, t0)}); err == nil {
		t.Fatal("error swallowed")
	}
	fail = false
	// The cursor write was lost: 2 and 3 come again, with 4 and 5. 2 is the
	// same change and is dropped; 3 has another commit time, i.e. another
	// change at a position a rolled-back database reused, and is delivered.
	if err := f.Process(ctx, []decoder.Change{ch(2, t0), ch(3, t0.Add(time.Second)), ch(4, t0), ch(5, t0)}); err != nil {
		t.Fatal(err)
	}
	want := []uint64{1, 2, 3, 3, 4, 5}
	if len(got) != len(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivered %v, want %v", got, want)
		}
	}
	// An all-duplicate batch reaches nobody and succeeds (the cursor moves).
	got = nil
	if err := f.Process(ctx, []decoder.Change{ch(4, t0), ch(5, t0)}); err != nil || len(got) != 0 {
		t.Fatalf("duplicates delivered: %v %v", got, err)
	}
}
