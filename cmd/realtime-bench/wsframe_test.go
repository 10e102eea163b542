package main

import (
	"bytes"
	"testing"
)

func TestParseServerFrame(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 300)
	huge := bytes.Repeat([]byte("y"), 70000)
	frame := func(b0 byte, payload []byte) []byte {
		out := []byte{b0}
		switch n := len(payload); {
		case n < 126:
			out = append(out, byte(n))
		case n < 1<<16:
			out = append(out, 126, byte(n>>8), byte(n))
		default:
			out = append(out, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		}
		return append(out, payload...)
	}
	for _, tc := range []struct {
		name    string
		in      []byte
		n       int
		op      byte
		fin     bool
		payload []byte
		bad     bool
	}{
		{name: "text", in: frame(0x81, []byte("hi")), n: 4, op: opText, fin: true, payload: []byte("hi")},
		{name: "16-bit length", in: frame(0x82, long), n: 304, op: opBinary, fin: true, payload: long},
		{name: "64-bit length", in: frame(0x01, huge), n: 10 + len(huge), op: opText, payload: huge},
		{name: "followed by more", in: append(frame(0x81, []byte("a")), 0x81), n: 3, op: opText, fin: true, payload: []byte("a")},
		{name: "header only", in: []byte{0x81}},
		{name: "length cut", in: frame(0x81, long)[:3]},
		{name: "payload cut", in: frame(0x81, long)[:200]},
		{name: "masked", in: []byte{0x81, 0x81, 1, 2, 3, 4, 'x'}, bad: true},
		{name: "reserved bits", in: []byte{0xC1, 0}, bad: true},
		{name: "long ping", in: frame(0x89, long), bad: true},
		{name: "fragmented close", in: []byte{0x08, 0}, bad: true},
		{name: "over the limit", in: []byte{0x82, 127, 0, 0, 0, 0, 0x7f, 0, 0, 0}, bad: true},
	} {
		f, n, err := parseServerFrame(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%s: accepted", tc.name)
			}
			continue
		}
		if err != nil || n != tc.n {
			t.Errorf("%s: n=%d err=%v, want n=%d", tc.name, n, err, tc.n)
			continue
		}
		if n > 0 && (f.op != tc.op || f.fin != tc.fin || !bytes.Equal(f.payload, tc.payload)) {
			t.Errorf("%s: op=%d fin=%v len=%d", tc.name, f.op, f.fin, len(f.payload))
		}
	}
}
