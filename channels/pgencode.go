package channels

import (
	"strconv"
	"strings"
	"time"

	"github.com/openrealtime/realtime/decoder"
	"github.com/openrealtime/realtime/internal/jsonw"
)

var (
	errNoPrimaryKey = "Error 400: Bad Request, no primary key"
	errUnauthorized = "Error 401: Unauthorized"
	errTooLarge     = "Error 413: Payload Too Large"
)

// payloadCache encodes each change's `data` object once per visible column
// set (role privileges × select list) within one batch.
type payloadCache struct {
	maxBytes int
	byKey    map[string][]byte
	errs     map[errKey][]byte
}

type errKey struct {
	change *decoder.Change
	text   string
}

func newPayloadCache(maxBytes int) *payloadCache {
	return &payloadCache{maxBytes: maxBytes, byKey: make(map[string][]byte)}
}

// change returns the data object of batch change ci as seen by role with
// the privileges pk and the select set sel.
func (c *payloadCache) change(ch *decoder.Change, ci int, role string, pk map[string]bool, sel map[string]bool, info *TableInfo) []byte {
	key := strconv.Itoa(ci) + "|" + role + "|" + selKey(sel)
	if b, ok := c.byKey[key]; ok {
		return b
	}
	visible := make([]int, 0, len(ch.Rel.Columns))
	for i, col := range ch.Rel.Columns {
		if pk[col.Name] && (sel == nil || sel[col.Name]) {
			visible = append(visible, i)
		}
	}
	b := encodeChange(ch, visible, info, c.maxBytes)
	c.byKey[key] = b
	return b
}

// errorEvent returns the docs/protocol.md §4.5 error event for ch (400 or
// 401) with the error text.
func (c *payloadCache) errorEvent(ch *decoder.Change, text string) []byte {
	if c.errs == nil {
		c.errs = make(map[errKey][]byte)
	}
	k := errKey{ch, text}
	if b, ok := c.errs[k]; ok {
		return b
	}
	b := []byte(`{"schema":`)
	b = jsonw.AppendString(b, ch.Rel.Schema)
	b = append(b, `,"table":`...)
	b = jsonw.AppendString(b, ch.Rel.Table)
	b = append(b, `,"commit_timestamp":null,"type":`...)
	b = jsonw.AppendString(b, ch.Kind.String())
	b = append(b, `,"columns":[],"record":{}`...)
	if ch.Kind == decoder.Update {
		b = append(b, `,"old_record":{}`...)
	}
	b = append(b, `,"errors":[`...)
	b = jsonw.AppendString(b, text)
	b = append(b, "]}"...)
	c.errs[k] = b
	return b
}

func selKey(sel map[string]bool) string {
	if sel == nil {
		return "*"
	}
	names := make([]string, 0, len(sel))
	for n := range sel {
		names = append(names, n)
	}
	// Order does not matter for identity as long as it is stable.
	sortStrings(names)
	return strings.Join(names, ",")
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// CommitTimestamp formats a commit time as docs/protocol.md §4.1 requires:
// UTC, millisecond precision, Z suffix.
func CommitTimestamp(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
}

// encodeChange builds the data object (docs/protocol.md §4.1, §4.4, §4.5) with
// the given visible columns.
func encodeChange(ch *decoder.Change, visible []int, info *TableInfo, maxBytes int) []byte {
	rel := ch.Rel
	b := make([]byte, 0, 256)
	b = append(b, `{"schema":`...)
	b = jsonw.AppendString(b, rel.Schema)
	b = append(b, `,"table":`...)
	b = jsonw.AppendString(b, rel.Table)
	b = append(b, `,"commit_timestamp":"`...)
	b = CommitTimestamp(b, ch.CommitTime)
	b = append(b, `","type":`...)
	b = jsonw.AppendString(b, ch.Kind.String())
	b = append(b, `,"columns":[`...)
	for i, ci := range visible {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = jsonw.AppendString(b, rel.Columns[ci].Name)
		b = append(b, `,"type":`...)
		b = jsonw.AppendString(b, rel.Columns[ci].Type)
		b = append(b, '}')
	}
	b = append(b, ']')
	head := len(b)

	build := func(limit int) []byte {
		out := b[:head:head]
		if ch.Kind != decoder.Delete {
			out = append(out, `,"record":`...)
			out = appendRecord(out, ch, visible, limit)
		}
		if ch.Kind != decoder.Insert {
			out = append(out, `,"old_record":`...)
			out = appendOldRecord(out, ch, visible, info, limit)
		}
		return out
	}
	out := build(0)
	if maxBytes > 0 && len(out) > maxBytes {
		out = build(64)
		out = append(out, `,"errors":["`+errTooLarge+`"]}`...)
		return out
	}
	return append(out, `,"errors":null}`...)
}

// appendRecord writes the new image. Unchanged TOAST values are omitted,
// unless the old image (replica identity full) has them.
func appendRecord(b []byte, ch *decoder.Change, visible []int, limit int) []byte {
	b = append(b, '{')
	first := true
	for _, ci := range visible {
		if ci >= len(ch.New) {
			continue
		}
		v := ch.New[ci]
		if v.Absent {
			if ci < len(ch.Old) && !ch.Old[ci].Absent {
				v = ch.Old[ci]
			} else {
				continue
			}
		}
		j := v.RenderedJSON()
		if limit > 0 && len(j) > limit {
			continue
		}
		b = appendField(b, &first, ch.Rel.Columns[ci].Name, j)
	}
	return append(b, '}')
}

// appendOldRecord writes old_record per replica identity (docs/protocol.md §4.4): the old
// image when there is one (only key columns for a DELETE on an RLS table),
// else the key columns of the new image, else {}.
func appendOldRecord(b []byte, ch *decoder.Change, visible []int, info *TableInfo, limit int) []byte {
	b = append(b, '{')
	first := true
	keyOnly := ch.Kind == decoder.Delete && info != nil && info.RLS
	src := ch.Old
	if src == nil {
		if ch.Rel.ReplicaIdentity == 'n' || ch.Kind == decoder.Delete {
			return append(b, '}')
		}
		src = ch.New
		keyOnly = true
	}
	for _, ci := range visible {
		if ci >= len(src) {
			continue
		}
		col := ch.Rel.Columns[ci]
		if keyOnly && !isKey(col, info) {
			continue
		}
		v := src[ci]
		if v.Absent {
			continue
		}
		j := v.RenderedJSON()
		if limit > 0 && len(j) > limit {
			continue
		}
		b = appendField(b, &first, col.Name, j)
	}
	return append(b, '}')
}

func isKey(col decoder.Column, info *TableInfo) bool {
	if info != nil && len(info.PrimaryKey) > 0 {
		for _, k := range info.PrimaryKey {
			if k == col.Name {
				return true
			}
		}
		return false
	}
	return col.Key
}

func appendField(b []byte, first *bool, name string, val []byte) []byte {
	if !*first {
		b = append(b, ',')
	}
	*first = false
	b = jsonw.AppendString(b, name)
	b = append(b, ':')
	if len(val) == 0 {
		return append(b, "null"...)
	}
	return append(b, val...)
}
