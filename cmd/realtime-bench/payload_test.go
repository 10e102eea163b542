package main

import (
	"encoding/json"
	"testing"
	"time"
)

func TestMarkerRoundTrip(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	for _, size := range []int{0, 10, 64, 300} {
		p := appendMarker(nil, 4242, at, size)
		var v struct {
			M int64  `json:"m"`
			T int64  `json:"t"`
			P string `json:"p"`
		}
		if err := json.Unmarshal(p, &v); err != nil {
			t.Fatalf("size %d: not JSON: %s", size, p)
		}
		if v.M != 4242 || v.T != at.UnixNano() {
			t.Fatalf("size %d: decoded %+v", size, v)
		}
		if size > 40 && len(p) != size {
			t.Fatalf("size %d: payload is %d bytes", size, len(p))
		}
		mk, ok := parseBroadcastPayload(p)
		if !ok || mk.m != 4242 || mk.sentNS != at.UnixNano() {
			t.Fatalf("size %d: scanned %+v %v", size, mk, ok)
		}
	}
}

func TestScanInt(t *testing.T) {
	cases := []struct {
		in   string
		key  string
		want int64
		ok   bool
	}{
		{`{"m":5}`, "m", 5, true},
		{`{"m" : -7 , "x":1}`, "m", -7, true},
		{`{"id": "12"}`, "id", 12, true},  // quoted int8
		{`{"p":"m","m":3}`, "m", 3, true}, // "m" as a value first
		{`{"mm":1,"m":2}`, "m", 2, true},  // longer key sharing a prefix
		{`{"m":"abc"}`, "m", 0, false},    // not a number
		{`{"x":1}`, "m", 0, false},        // absent
		{`{"sent_ns":1700000000000000000}`, "sent_ns", 1700000000000000000, true},
	}
	for _, c := range cases {
		got, ok := scanInt([]byte(c.in), c.key)
		if got != c.want || ok != c.ok {
			t.Errorf("scanInt(%s, %q) = %d, %v; want %d, %v", c.in, c.key, got, ok, c.want, c.ok)
		}
	}
}

func TestParseChangeDataReadsRecordNotOldRecord(t *testing.T) {
	// jsonb-style spacing, old_record first, as an UPDATE may arrive.
	d := []byte(`{"schema": "public", "old_record": {"id": 9, "m": 1, "sent_ns": 2}, "record": {"id": 9, "m": 77, "pad": "", "sent_ns": 1700000000000000001, "user_id": "00000000-0000-4000-8000-000000000001"}, "commit_timestamp": "2025-01-02T03:04:05.678Z", "type": "UPDATE"}`)
	mk, ok := parseChangeData(d)
	if !ok || mk.m != 77 || mk.sentNS != 1700000000000000001 {
		t.Fatalf("got %+v %v", mk, ok)
	}
	want := time.Date(2025, 1, 2, 3, 4, 5, 678e6, time.UTC)
	if !mk.commit.Equal(want) {
		t.Fatalf("commit %v want %v", mk.commit, want)
	}
	if _, ok := parseChangeData([]byte(`{"old_record":{"id":1},"type":"DELETE"}`)); ok {
		t.Fatal("a change without record parsed")
	}
}
