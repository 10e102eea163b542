package main

import "bytes"

// splitDelivery cuts a vsn 2.0.0 text frame [join_ref, ref, topic, event,
// payload] whose event is a delivery (postgres_changes or broadcast) into
// its topic and payload without validating the payload: the receive path
// of 1,000 subscribers spends most of its time in encoding/json otherwise,
// and the tool's CPU is taken from the service under test. ok is false for
// any other frame or anything unusual (escapes in topic or event), which
// the caller decodes in full.
func splitDelivery(data []byte) (topic []byte, change bool, payload []byte, ok bool) {
	p := 0
	if p = skipSpace(data, p); p >= len(data) || data[p] != '[' {
		return nil, false, nil, false
	}
	p++
	for i := 0; i < 2; i++ { // join_ref, ref: null, a string without escapes or a number
		p = skipSpace(data, p)
		if p = skipScalar(data, p); p < 0 {
			return nil, false, nil, false
		}
		if p = skipSpace(data, p); p >= len(data) || data[p] != ',' {
			return nil, false, nil, false
		}
		p++
	}
	var ev []byte
	for i := 0; i < 2; i++ {
		p = skipSpace(data, p)
		s, next := plainString(data, p)
		if next < 0 {
			return nil, false, nil, false
		}
		if i == 0 {
			topic = s
		} else {
			ev = s
		}
		if p = skipSpace(data, next); p >= len(data) || data[p] != ',' {
			return nil, false, nil, false
		}
		p++
	}
	switch {
	case bytes.Equal(ev, []byte("postgres_changes")):
		change = true
	case bytes.Equal(ev, []byte("broadcast")):
	default:
		return nil, false, nil, false
	}
	end := len(data) - 1
	for end > p && isWS(data[end]) {
		end--
	}
	if end <= p || data[end] != ']' {
		return nil, false, nil, false
	}
	return topic, change, bytes.TrimSpace(data[p:end]), true
}

// skipScalar returns the position after a JSON null, number or escape-free
// string starting at p, or -1.
func skipScalar(b []byte, p int) int {
	if p >= len(b) {
		return -1
	}
	switch c := b[p]; {
	case c == '"':
		_, next := plainString(b, p)
		return next
	case c == 'n':
		if bytes.HasPrefix(b[p:], []byte("null")) {
			return p + 4
		}
		return -1
	case c == '-' || (c >= '0' && c <= '9'):
		for p < len(b) && (b[p] == '-' || b[p] == '.' || b[p] == '+' || b[p] == 'e' || b[p] == 'E' || (b[p] >= '0' && b[p] <= '9')) {
			p++
		}
		return p
	}
	return -1
}

// plainString returns the contents of an escape-free JSON string at p and
// the position after it; next is -1 when there is none.
func plainString(b []byte, p int) (s []byte, next int) {
	if p >= len(b) || b[p] != '"' {
		return nil, -1
	}
	i := bytes.IndexByte(b[p+1:], '"')
	if i < 0 {
		return nil, -1
	}
	s = b[p+1 : p+1+i]
	if bytes.IndexByte(s, '\\') >= 0 {
		return nil, -1
	}
	return s, p + 2 + i
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
