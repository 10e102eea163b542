package main

import (
	"bytes"
	"strconv"
	"time"
)

// Every broadcast payload the tool sends is a JSON object
// {"m":<message index>,"t":<send time, Unix ns>,"p":"<padding>"}; database
// rows carry the same facts in columns m and sent_ns. Receivers find the
// members with a small scanner instead of a full JSON decode so that the
// tool spends its CPU on the service, not on itself.

// appendMarker appends the broadcast payload for message m sent at t,
// padded with 'x' so the payload is about size bytes long.
func appendMarker(dst []byte, m int64, t time.Time, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"m":`...)
	dst = strconv.AppendInt(dst, m, 10)
	dst = append(dst, `,"t":`...)
	dst = strconv.AppendInt(dst, t.UnixNano(), 10)
	dst = append(dst, `,"p":"`...)
	for n := len(dst) - start + 2; n < size; n++ {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// scanInt finds the member "key" in a JSON object text and parses its
// integer value; a quoted integer (as int8 columns may render) is accepted
// too. Whitespace around the colon is allowed. It looks at the first
// occurrence only, so callers pass the narrowest slice they have.
func scanInt(b []byte, key string) (int64, bool) {
	pat := make([]byte, 0, len(key)+2)
	pat = append(pat, '"')
	pat = append(pat, key...)
	pat = append(pat, '"')
	for off := 0; ; {
		i := bytes.Index(b[off:], pat)
		if i < 0 {
			return 0, false
		}
		p := off + i + len(pat)
		off = p
		p = skipSpace(b, p)
		if p >= len(b) || b[p] != ':' {
			continue // the text was a value, not a member name
		}
		p = skipSpace(b, p+1)
		if p < len(b) && b[p] == '"' {
			p++
		}
		end := p
		if end < len(b) && b[end] == '-' {
			end++
		}
		for end < len(b) && b[end] >= '0' && b[end] <= '9' {
			end++
		}
		v, err := strconv.ParseInt(string(b[p:end]), 10, 64)
		if err != nil {
			return 0, false
		}
		return v, true
	}
}

// scanString finds the member "key" whose value is a JSON string without
// escapes (timestamps, uuids) and returns the raw text.
func scanString(b []byte, key string) ([]byte, bool) {
	pat := append(append([]byte{'"'}, key...), '"')
	for off := 0; ; {
		i := bytes.Index(b[off:], pat)
		if i < 0 {
			return nil, false
		}
		p := off + i + len(pat)
		off = p
		p = skipSpace(b, p)
		if p >= len(b) || b[p] != ':' {
			continue
		}
		p = skipSpace(b, p+1)
		if p >= len(b) || b[p] != '"' {
			return nil, false
		}
		end := bytes.IndexByte(b[p+1:], '"')
		if end < 0 {
			return nil, false
		}
		return b[p+1 : p+1+end], true
	}
}

func skipSpace(b []byte, p int) int {
	for p < len(b) && (b[p] == ' ' || b[p] == '\t' || b[p] == '\n' || b[p] == '\r') {
		p++
	}
	return p
}

// marker is what a receiver extracts from one delivered message.
type marker struct {
	m      int64
	sentNS int64
	commit time.Time // zero when the message has no commit timestamp
}

// parseBroadcastPayload reads the marker of a broadcast payload object.
func parseBroadcastPayload(p []byte) (marker, bool) {
	m, ok1 := scanInt(p, "m")
	t, ok2 := scanInt(p, "t")
	return marker{m: m, sentNS: t}, ok1 && ok2
}

// parseChangeData reads the marker of a postgres_changes data object: the
// m and sent_ns columns of "record" (never "old_record") and
// commit_timestamp.
func parseChangeData(d []byte) (marker, bool) {
	rec := d
	if i := bytes.Index(d, []byte(`"record"`)); i >= 0 {
		rec = d[i:]
	} else {
		return marker{}, false
	}
	m, ok1 := scanInt(rec, "m")
	t, ok2 := scanInt(rec, "sent_ns")
	if !ok1 || !ok2 {
		return marker{}, false
	}
	mk := marker{m: m, sentNS: t}
	if ts, ok := scanString(d, "commit_timestamp"); ok {
		if ct, err := time.Parse(time.RFC3339Nano, string(ts)); err == nil {
			mk.commit = ct
		}
	}
	return mk, true
}
