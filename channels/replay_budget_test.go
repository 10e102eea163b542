package channels

import (
	"testing"
	"time"

	"github.com/openrealtime/realtime/decoder"
)

// A resume's work is bounded by its byte budget: only the newest changes
// that fit are returned, and the rest is reported as a gap; without a
// budget, or when everything fits, the whole tail comes back gap-free.
func TestReplayWindowBudget(t *testing.T) {
	w := newReplayWindow(100, time.Hour, 0)
	w.base, w.hasBase = 1, true
	big := func(n int) decoder.Change {
		return decoder.Change{New: []decoder.Value{{Text: string(make([]byte, n))}}}
	}
	var batch []decoder.Change
	var curs []Cursor
	for i := range 10 {
		batch = append(batch, big(1<<20))
		curs = append(curs, Cursor{Pos: uint64(10 + i)})
	}
	w.add(batch, curs)
	size := changeSize(&batch[0])

	if chs, _, gap := w.sinceWithin(Cursor{Pos: 9}, 0); gap || len(chs) != 10 {
		t.Fatalf("no budget: %d changes, gap %v; want 10, no gap", len(chs), gap)
	}
	if chs, _, gap := w.sinceWithin(Cursor{Pos: 9}, 10*size); gap || len(chs) != 10 {
		t.Fatalf("budget for all: %d changes, gap %v; want 10, no gap", len(chs), gap)
	}
	chs, cs, gap := w.sinceWithin(Cursor{Pos: 9}, 3*size+size/2)
	if !gap || len(chs) != 3 || cs[0].Pos != 17 || cs[2].Pos != 19 {
		t.Fatalf("budget for 3.5: %d changes from %v, gap %v; want the newest 3 (17..19) and a gap", len(chs), cs, gap)
	}
	if chs, _, gap := w.sinceWithin(Cursor{Pos: 18}, 3*size); gap || len(chs) != 1 {
		t.Fatalf("short tail: %d changes, gap %v; want 1, no gap", len(chs), gap)
	}
	if chs, _, gap := w.sinceWithin(Cursor{Pos: 9}, size/2); !gap || len(chs) != 0 {
		t.Fatalf("budget below one change: %d changes, gap %v; want none and a gap", len(chs), gap)
	}
}
