package channels

import (
	"testing"
	"time"

	"github.com/openrealtime/realtime/decoder"
)

// BenchmarkReplayWindowFull adds batches of 10 changes to a full window of
// 10,000: the cost of keeping the SSE resume window under a steady feed.
func BenchmarkReplayWindowFull(b *testing.B) {
	w := newReplayWindow(10000, time.Hour, 0)
	batch := make([]decoder.Change, 10)
	cursors := make([]Cursor, 10)
	pos := uint64(0)
	add := func() {
		for i := range batch {
			pos++
			batch[i] = decoder.Change{Position: pos}
			cursors[i] = Cursor{Pos: pos}
		}
		w.add(batch, cursors)
	}
	for range 1000 {
		add()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		add()
	}
}
