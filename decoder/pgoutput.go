package decoder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// pgoutput protocol version 1 messages (PostgreSQL "Logical Replication
// Message Formats"). parseMessage checks every length; byte slices in the
// results alias the input.

type beginMsg struct {
	finalLSN   LSN
	commitTime time.Time
	xid        uint32
}

type commitMsg struct {
	flags      byte
	commitLSN  LSN
	endLSN     LSN
	commitTime time.Time
}

type relationMsg struct {
	oid       uint32
	namespace string
	name      string
	replIdent byte
	columns   []relationColumn
}

type relationColumn struct {
	flags   byte // 1: part of the replica identity key
	name    string
	typeOID uint32
	typmod  int32
}

type typeMsg struct {
	oid       uint32
	namespace string
	name      string
}

// tupleColumn is one column of a TupleData: kind 'n' null, 'u' unchanged
// TOAST, 't' text, 'b' binary.
type tupleColumn struct {
	kind byte
	data []byte
}

type insertMsg struct {
	relation uint32
	tuple    []tupleColumn
}

type updateMsg struct {
	relation uint32
	oldKind  byte // 0 (no old image), 'K' key or 'O' old row
	old      []tupleColumn
	tuple    []tupleColumn
}

type deleteMsg struct {
	relation uint32
	oldKind  byte // 'K' or 'O'
	old      []tupleColumn
}

// ignoredMsg is a message the decoder skips: 'T' truncate, 'O' origin,
// 'M' logical decoding message.
type ignoredMsg struct{ kind byte }

var errShort = errors.New("message too short")

// msgReader reads big-endian fields; after the first error every read
// returns zero values and err stays set.
type msgReader struct {
	b   []byte
	err error
}

func (r *msgReader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if len(r.b) < n {
		r.err = errShort
		return false
	}
	return true
}

func (r *msgReader) u8() byte {
	if !r.need(1) {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *msgReader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *msgReader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *msgReader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *msgReader) str() string {
	if r.err != nil {
		return ""
	}
	i := bytes.IndexByte(r.b, 0)
	if i < 0 {
		r.err = errors.New("unterminated string")
		return ""
	}
	s := string(r.b[:i])
	r.b = r.b[i+1:]
	return s
}

func (r *msgReader) bytes(n int) []byte {
	if n < 0 {
		r.err = errors.New("negative length")
		return nil
	}
	if !r.need(n) {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// pgEpoch is the PostgreSQL timestamp epoch, 2000-01-01 UTC, in Unix seconds.
const pgEpoch = 946684800

func (r *msgReader) time() time.Time {
	us := int64(r.u64())
	sec, rem := us/1e6, us%1e6
	if rem < 0 {
		sec--
		rem += 1e6
	}
	return time.Unix(pgEpoch+sec, rem*1000).UTC()
}

func (r *msgReader) tuple() []tupleColumn {
	n := int(r.u16())
	if r.err != nil {
		return nil
	}
	// Each column takes at least one byte: don't trust n for allocation.
	if n > len(r.b) {
		r.err = errShort
		return nil
	}
	cols := make([]tupleColumn, n)
	for i := range cols {
		k := r.u8()
		cols[i].kind = k
		switch k {
		case 'n', 'u':
		case 't', 'b':
			l := r.u32()
			if uint64(l) > uint64(len(r.b)) {
				if r.err == nil {
					r.err = errShort
				}
				return nil
			}
			cols[i].data = r.bytes(int(l))
		default:
			if r.err == nil {
				r.err = fmt.Errorf("unknown tuple column kind %q", k)
			}
			return nil
		}
	}
	return cols
}

// parseMessage decodes one pgoutput message (the WAL data of an XLogData).
// It rejects short or malformed input and unknown message types.
func parseMessage(b []byte) (any, error) {
	if len(b) == 0 {
		return nil, errors.New("decoder: empty pgoutput message")
	}
	kind := b[0]
	r := &msgReader{b: b[1:]}
	var m any
	switch kind {
	case 'B':
		m = beginMsg{finalLSN: LSN(r.u64()), commitTime: r.time(), xid: r.u32()}
	case 'C':
		m = commitMsg{flags: r.u8(), commitLSN: LSN(r.u64()), endLSN: LSN(r.u64()), commitTime: r.time()}
	case 'R':
		rm := relationMsg{oid: r.u32(), namespace: r.str(), name: r.str(), replIdent: r.u8()}
		n := int(r.u16())
		if r.err == nil && n > len(r.b) {
			r.err = errShort
		}
		if r.err == nil {
			rm.columns = make([]relationColumn, n)
			for i := range rm.columns {
				rm.columns[i] = relationColumn{flags: r.u8(), name: r.str(), typeOID: r.u32(), typmod: int32(r.u32())}
			}
		}
		m = rm
	case 'Y':
		m = typeMsg{oid: r.u32(), namespace: r.str(), name: r.str()}
	case 'I':
		im := insertMsg{relation: r.u32()}
		if t := r.u8(); r.err == nil && t != 'N' {
			return nil, fmt.Errorf("decoder: insert: unexpected tuple marker %q", t)
		}
		im.tuple = r.tuple()
		m = im
	case 'U':
		um := updateMsg{relation: r.u32()}
		t := r.u8()
		if t == 'K' || t == 'O' {
			um.oldKind = t
			um.old = r.tuple()
			t = r.u8()
		}
		if r.err == nil && t != 'N' {
			return nil, fmt.Errorf("decoder: update: unexpected tuple marker %q", t)
		}
		um.tuple = r.tuple()
		m = um
	case 'D':
		dm := deleteMsg{relation: r.u32(), oldKind: r.u8()}
		if r.err == nil && dm.oldKind != 'K' && dm.oldKind != 'O' {
			return nil, fmt.Errorf("decoder: delete: unexpected tuple marker %q", dm.oldKind)
		}
		dm.old = r.tuple()
		m = dm
	case 'T', 'O', 'M':
		return ignoredMsg{kind: kind}, nil
	default:
		return nil, fmt.Errorf("decoder: unsupported pgoutput message %q", kind)
	}
	if r.err != nil {
		return nil, fmt.Errorf("decoder: pgoutput message %q: %w", kind, r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("decoder: pgoutput message %q: %d trailing bytes", kind, len(r.b))
	}
	return m, nil
}
