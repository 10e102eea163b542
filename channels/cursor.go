package channels

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/openrealtime/realtime/decoder"
)

// Cursor identifies one change in the stream: the source position of its
// transaction and its index within the transaction. Cursors order changes.
type Cursor struct {
	// Pos is the source position (commit LSN, or change-log id).
	Pos uint64
	// Seq is the change's index within its transaction.
	Seq uint32
}

// IsZero reports whether c is the zero cursor (no change).
func (c Cursor) IsZero() bool { return c.Pos == 0 && c.Seq == 0 }

// Less reports whether c comes before d.
func (c Cursor) Less(d Cursor) bool {
	return c.Pos < d.Pos || (c.Pos == d.Pos && c.Seq < d.Seq)
}

// String is the wire form used as an SSE event id: "<pos>-<seq>".
func (c Cursor) String() string {
	return strconv.FormatUint(c.Pos, 10) + "-" + strconv.FormatUint(uint64(c.Seq), 10)
}

// ParseCursor parses the String form.
func ParseCursor(s string) (Cursor, error) {
	pos, seq, ok := strings.Cut(strings.TrimSpace(s), "-")
	p, err1 := strconv.ParseUint(pos, 10, 64)
	q, err2 := strconv.ParseUint(seq, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return Cursor{}, fmt.Errorf("channels: invalid cursor %q", s)
	}
	return Cursor{Pos: p, Seq: uint32(q)}, nil
}

// cursorsOf numbers the changes of a batch: changes sharing a position (one
// transaction) get consecutive Seq values.
func cursorsOf(batch []decoder.Change) []Cursor {
	out := make([]Cursor, len(batch))
	var seq uint32
	for i := range batch {
		if i > 0 && batch[i].Position == batch[i-1].Position {
			seq++
		} else {
			seq = 0
		}
		out[i] = Cursor{Pos: batch[i].Position, Seq: seq}
	}
	return out
}
