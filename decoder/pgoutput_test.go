package decoder

import (
	"context"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Builders for pgoutput v1 messages, written from the protocol
// documentation ("Logical Replication Message Formats").

func pgTime(t time.Time) uint64 {
	return uint64(t.Sub(time.Unix(pgEpoch, 0)) / time.Microsecond)
}

type msgBuf []byte

func (b msgBuf) u8(v byte) msgBuf      { return append(b, v) }
func (b msgBuf) u16(v uint16) msgBuf   { return binary.BigEndian.AppendUint16(b, v) }
func (b msgBuf) u32(v uint32) msgBuf   { return binary.BigEndian.AppendUint32(b, v) }
func (b msgBuf) u64(v uint64) msgBuf   { return binary.BigEndian.AppendUint64(b, v) }
func (b msgBuf) str(s string) msgBuf   { return append(append(b, s...), 0) }
func (b msgBuf) raw(p []byte) msgBuf   { return append(b, p...) }
func (b msgBuf) tm(t time.Time) msgBuf { return b.u64(pgTime(t)) }

func beginBytes(final LSN, t time.Time, xid uint32) []byte {
	return msgBuf{'B'}.u64(uint64(final)).tm(t).u32(xid)
}

func commitBytes(commit, end LSN, t time.Time) []byte {
	return msgBuf{'C'}.u8(0).u64(uint64(commit)).u64(uint64(end)).tm(t)
}

func relationBytes(m relationMsg) []byte {
	b := msgBuf{'R'}.u32(m.oid).str(m.namespace).str(m.name).u8(m.replIdent).u16(uint16(len(m.columns)))
	for _, c := range m.columns {
		b = b.u8(c.flags).str(c.name).u32(c.typeOID).u32(uint32(c.typmod))
	}
	return b
}

func tupleBytes(b msgBuf, cols []tupleColumn) msgBuf {
	b = b.u16(uint16(len(cols)))
	for _, c := range cols {
		b = b.u8(c.kind)
		if c.kind == 't' || c.kind == 'b' {
			b = b.u32(uint32(len(c.data))).raw(c.data)
		}
	}
	return b
}

func insertBytes(rel uint32, cols []tupleColumn) []byte {
	return tupleBytes(msgBuf{'I'}.u32(rel).u8('N'), cols)
}

func updateBytes(rel uint32, oldKind byte, old, cols []tupleColumn) []byte {
	b := msgBuf{'U'}.u32(rel)
	if oldKind != 0 {
		b = tupleBytes(b.u8(oldKind), old)
	}
	return tupleBytes(b.u8('N'), cols)
}

func deleteBytes(rel uint32, oldKind byte, old []tupleColumn) []byte {
	return tupleBytes(msgBuf{'D'}.u32(rel).u8(oldKind), old)
}

func txt(s string) tupleColumn { return tupleColumn{kind: 't', data: []byte(s)} }

var (
	nullCol  = tupleColumn{kind: 'n'}
	toastCol = tupleColumn{kind: 'u'}
)

var testRel = relationMsg{oid: 16400, namespace: "public", name: "items", replIdent: 'd', columns: []relationColumn{
	{flags: 1, name: "id", typeOID: oidInt8, typmod: -1},
	{flags: 0, name: "body", typeOID: 25, typmod: -1},
	{flags: 0, name: "price", typeOID: oidNumeric, typmod: 655366},
}}

func TestParseMessage(t *testing.T) {
	ts := time.Date(2024, 5, 1, 12, 0, 0, 123456000, time.UTC)
	tests := []struct {
		name string
		in   []byte
		want any
	}{
		{"begin", beginBytes(0x1000, ts, 77), beginMsg{finalLSN: 0x1000, commitTime: ts, xid: 77}},
		{"commit", commitBytes(0x1000, 0x1030, ts), commitMsg{commitLSN: 0x1000, endLSN: 0x1030, commitTime: ts}},
		{"relation", relationBytes(testRel), testRel},
		{"type", msgBuf{'Y'}.u32(90001).str("public").str("mood"), typeMsg{oid: 90001, namespace: "public", name: "mood"}},
		{"insert", insertBytes(16400, []tupleColumn{txt("1"), nullCol, txt("")}),
			insertMsg{relation: 16400, tuple: []tupleColumn{txt("1"), nullCol, {kind: 't', data: []byte{}}}}},
		{"update new only", updateBytes(16400, 0, nil, []tupleColumn{txt("1"), toastCol, txt("2.50")}),
			updateMsg{relation: 16400, tuple: []tupleColumn{txt("1"), toastCol, txt("2.50")}}},
		{"update with key", updateBytes(16400, 'K', []tupleColumn{txt("1"), nullCol, nullCol}, []tupleColumn{txt("2"), toastCol, txt("2.50")}),
			updateMsg{relation: 16400, oldKind: 'K', old: []tupleColumn{txt("1"), nullCol, nullCol}, tuple: []tupleColumn{txt("2"), toastCol, txt("2.50")}}},
		{"update with old row", updateBytes(16400, 'O', []tupleColumn{txt("1"), txt("a"), nullCol}, []tupleColumn{txt("1"), txt("b"), nullCol}),
			updateMsg{relation: 16400, oldKind: 'O', old: []tupleColumn{txt("1"), txt("a"), nullCol}, tuple: []tupleColumn{txt("1"), txt("b"), nullCol}}},
		{"delete", deleteBytes(16400, 'K', []tupleColumn{txt("1"), nullCol, nullCol}),
			deleteMsg{relation: 16400, oldKind: 'K', old: []tupleColumn{txt("1"), nullCol, nullCol}}},
		{"truncate ignored", msgBuf{'T'}.u32(1).u8(0).u32(16400), ignoredMsg{kind: 'T'}},
		{"origin ignored", msgBuf{'O'}.u64(5).str("x"), ignoredMsg{kind: 'O'}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMessage(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseMessage = %#v\nwant %#v", got, tc.want)
			}
			if _, ignored := got.(ignoredMsg); ignored {
				return
			}
			// Every truncation must be rejected, never panic or succeed.
			for n := 0; n < len(tc.in); n++ {
				if m, err := parseMessage(tc.in[:n]); err == nil {
					t.Fatalf("parseMessage(first %d of %d bytes) = %#v, want error", n, len(tc.in), m)
				}
			}
			if _, err := parseMessage(append(append([]byte(nil), tc.in...), 0)); err == nil {
				t.Fatal("trailing byte accepted")
			}
		})
	}
	for _, bad := range [][]byte{
		{'Z'},
		{'S', 0, 0, 0, 1, 0},
		msgBuf{'I'}.u32(1).u8('X').u16(0),
		msgBuf{'D'}.u32(1).u8('N').u16(0),
		msgBuf{'I'}.u32(1).u8('N').u16(1).u8('q'),
		msgBuf{'I'}.u32(1).u8('N').u16(1).u8('t').u32(0xffffffff),
		msgBuf{'I'}.u32(1).u8('N').u16(0xffff),
		msgBuf{'R'}.u32(1).str("s").str("t").u8('d').u16(0xffff),
	} {
		if m, err := parseMessage(bad); err == nil {
			t.Errorf("parseMessage(%q) = %#v, want error", bad, m)
		}
	}
}

func FuzzParse(f *testing.F) {
	ts := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	f.Add([]byte{})
	f.Add(beginBytes(1, ts, 1))
	f.Add(commitBytes(1, 2, ts))
	f.Add(relationBytes(testRel))
	f.Add(insertBytes(16400, []tupleColumn{txt("1"), nullCol, toastCol}))
	f.Add(updateBytes(16400, 'K', []tupleColumn{txt("1"), nullCol, nullCol}, []tupleColumn{txt("2"), toastCol, txt("2.50")}))
	f.Add(deleteBytes(16400, 'O', []tupleColumn{txt("1"), txt("x"), nullCol}))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Also split the input in two, as a short read would.
		for _, in := range [][]byte{b, b[:len(b)/2]} {
			m, err := parseMessage(in)
			if err == nil && m == nil {
				t.Fatal("nil message without error")
			}
		}
	})
}

// TestLoopBatching drives the decode/batch loop with synthetic pgoutput
// events (no database): whole transactions per batch, MaxBatch honoured,
// already-received transactions grouped, positions confirmed only after the
// sink succeeded, old images and TOAST handled.
func TestLoopBatching(t *testing.T) {
	ts := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	var relations []*Relation
	l := NewLogical(LogicalConfig{Slot: "s", Publication: "p", MaxBatch: 3, OnRelation: func(r *Relation) { relations = append(relations, r) }})
	var batches [][]Change
	failNext := false
	sink := func(ctx context.Context, b []Change) error {
		if failNext {
			return errors.New("downstream broken")
		}
		batches = append(batches, b)
		return nil
	}
	s := &stream{l: l, sink: sink}

	events := make(chan event, 100)
	push := func(b []byte) { events <- event{data: b} }
	lsn := LSN(0x1000)
	txn := func(changes ...[]byte) LSN {
		push(beginBytes(lsn+10, ts, 1))
		for _, c := range changes {
			push(c)
		}
		push(commitBytes(lsn+10, lsn+20, ts))
		lsn += 100
		return lsn - 80
	}
	ins := func(id string) []byte { return insertBytes(16400, []tupleColumn{txt(id), txt("b" + id), txt("1.50")}) }

	push(relationBytes(testRel))
	end1 := txn(ins("1"), ins("2"))
	end2 := txn(ins("3"))
	end3 := txn(ins("4"))
	end4 := txn(ins("5"), ins("6"), ins("7"), ins("8")) // larger than MaxBatch: delivered whole
	end5 := txn(
		updateBytes(16400, 0, nil, []tupleColumn{txt("5"), toastCol, txt("2")}),
		updateBytes(16400, 'K', []tupleColumn{txt("6"), nullCol, nullCol}, []tupleColumn{txt("60"), txt("x"), nullCol}),
		deleteBytes(16400, 'K', []tupleColumn{txt("7"), nullCol, nullCol}),
	)
	events <- event{keepalive: true, walEnd: 0x9000}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.loop(ctx, ctx, events) }()
	waitFor(t, "all batches", func() bool { return l.confirmed.Load() == 0x9000 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("loop returned %v", err)
	}

	if len(relations) != 1 || relations[0].Table != "items" || !relations[0].Columns[0].Key || relations[0].Columns[1].Key ||
		relations[0].Columns[0].Type != "int8" || relations[0].Columns[2].Type != "numeric" {
		t.Fatalf("relations = %+v", relations)
	}
	var sizes []int
	var all []Change
	for _, b := range batches {
		sizes = append(sizes, len(b))
		all = append(all, b...)
	}
	if want := []int{3, 1, 4, 3}; !reflect.DeepEqual(sizes, want) {
		t.Fatalf("batch sizes = %v, want %v", sizes, want)
	}
	wantPos := []LSN{end1, end1, end2, end3, end4, end4, end4, end4, end5, end5, end5}
	for i, c := range all {
		if LSN(c.Position) != wantPos[i] {
			t.Errorf("change %d position %s, want %s", i, LSN(c.Position), wantPos[i])
		}
		if !c.CommitTime.Equal(ts) || c.Rel != relations[0] {
			t.Errorf("change %d: commit time %v rel %p", i, c.CommitTime, c.Rel)
		}
	}
	if c := all[0]; c.Kind != Insert || c.Old != nil || string(c.New[0].JSON) != "1" || c.New[1].Text != "b1" ||
		string(c.New[1].JSON) != `"b1"` || string(c.New[2].JSON) != "1.50" {
		t.Errorf("insert = %+v", c)
	}
	if c := all[8]; c.Kind != Update || c.Old != nil || !c.New[1].Absent || string(c.New[2].JSON) != "2" {
		t.Errorf("update with unchanged toast = %+v", c)
	}
	if c := all[9]; c.Kind != Update || c.Old == nil || string(c.Old[0].JSON) != "6" || !c.Old[1].Absent || !c.Old[2].Absent ||
		string(c.New[0].JSON) != "60" || !c.New[2].Null || string(c.New[2].JSON) != "null" {
		t.Errorf("update with key change = %+v", c)
	}
	if c := all[10]; c.Kind != Delete || c.New != nil || string(c.Old[0].JSON) != "7" || !c.Old[1].Absent {
		t.Errorf("delete = %+v", c)
	}
	st := l.Status()
	if st.Transactions != 5 || st.Changes != 11 || st.ReceivedPosition != uint64(end5) || st.ConfirmedPosition != 0x9000 ||
		st.ServerPosition != 0x9000 || st.LagBytes != 0 || !st.LastCommitTime.Equal(ts) {
		t.Errorf("status = %+v", st)
	}

	// A failing sink ends the loop and nothing gets confirmed.
	failNext = true
	events2 := make(chan event, 10)
	for _, b := range [][]byte{beginBytes(0xa000, ts, 2), ins("9"), commitBytes(0xa000, 0xa010, ts)} {
		events2 <- event{data: b}
	}
	err := s.loop(context.Background(), context.Background(), events2)
	if err == nil || !strings.Contains(err.Error(), "downstream broken") {
		t.Fatalf("loop with failing sink returned %v", err)
	}
	if got := l.confirmed.Load(); got != 0x9000 {
		t.Fatalf("confirmed moved to %s after a sink error", LSN(got))
	}
}

func TestLoopRejectsBadStreams(t *testing.T) {
	ts := time.Now()
	cases := map[string][][]byte{
		"change outside transaction": {relationBytes(testRel), insertBytes(16400, []tupleColumn{txt("1"), nullCol, nullCol})},
		"unknown relation":           {beginBytes(1, ts, 1), insertBytes(999, []tupleColumn{txt("1")})},
		"column count mismatch":      {relationBytes(testRel), beginBytes(1, ts, 1), insertBytes(16400, []tupleColumn{txt("1")})},
		"binary tuple":               {relationBytes(testRel), beginBytes(1, ts, 1), insertBytes(16400, []tupleColumn{{kind: 'b', data: []byte{1}}, nullCol, nullCol})},
		"nested begin":               {beginBytes(1, ts, 1), beginBytes(2, ts, 2)},
		"commit without begin":       {commitBytes(1, 2, ts)},
		"garbage":                    {{'I', 0}},
	}
	for name, msgs := range cases {
		t.Run(name, func(t *testing.T) {
			l := NewLogical(LogicalConfig{Slot: "s", Publication: "p"})
			s := &stream{l: l, sink: func(context.Context, []Change) error { return nil }}
			events := make(chan event, len(msgs))
			for _, m := range msgs {
				events <- event{data: m}
			}
			// The timeout is only a safety net: every case fails by itself.
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			if err := s.loop(ctx, ctx, events); err == nil || errors.Is(err, context.Canceled) {
				t.Fatalf("loop = %v, want a decode error", err)
			}
		})
	}
}

// waitFor polls cond until it holds; it fails the test after a generous
// safety timeout so a bug cannot hang the suite.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
