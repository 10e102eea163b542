package decoder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The wire form of a batch of changes, for handing decoded changes from the
// node that reads the replication slot to every node of a cluster
// (docs/cluster.md "Change hand-off"). It is deterministic: the same batch
// always encodes to the same bytes.
//
//	batch    = version:byte nrels:uvarint relation* nchanges:uvarint change*
//	relation = oid:uvarint schema:str table:str replident:byte announced:byte ncols:uvarint column*
//	column   = name:str type:str typeoid:uvarint key:byte
//	change   = kind:byte rel:uvarint commit:varint(unix ns) position:uvarint image(new) image(old)
//	image    = 0 | 1 n:uvarint value*
//	value    = flags:byte [text:str [json:str]]   flags: 1 absent, 2 null, 4 rendered on demand
//	str      = len:uvarint bytes
const batchWireVersion = 1

// Value flags of the wire form.
const (
	wireAbsent = 1 << iota
	wireNull
	wireLazy
)

// AppendBatch appends the wire form of batch to dst and returns it. Values
// rendered on demand are sent as text only (the receiver renders them when
// needed); all others carry their JSON. announced, when not nil, marks the
// relations the source announced anew (their cached facts are stale: the
// decoder reports them even when unchanged).
func AppendBatch(dst []byte, batch []Change, announced func(*Relation) bool) []byte {
	var rels []*Relation
	index := make(map[*Relation]int)
	for i := range batch {
		r := batch[i].Rel
		if _, ok := index[r]; !ok {
			index[r] = len(rels)
			rels = append(rels, r)
		}
	}
	dst = append(dst, batchWireVersion)
	dst = binary.AppendUvarint(dst, uint64(len(rels)))
	for _, r := range rels {
		dst = binary.AppendUvarint(dst, uint64(r.OID))
		dst = appendStr(dst, r.Schema)
		dst = appendStr(dst, r.Table)
		dst = append(dst, r.ReplicaIdentity, boolByte(announced != nil && announced(r)))
		dst = binary.AppendUvarint(dst, uint64(len(r.Columns)))
		for _, c := range r.Columns {
			dst = appendStr(dst, c.Name)
			dst = appendStr(dst, c.Type)
			dst = binary.AppendUvarint(dst, uint64(c.TypeOID))
			dst = append(dst, boolByte(c.Key))
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(batch)))
	for i := range batch {
		c := &batch[i]
		dst = append(dst, byte(c.Kind))
		dst = binary.AppendUvarint(dst, uint64(index[c.Rel]))
		dst = binary.AppendVarint(dst, c.CommitTime.UnixNano())
		dst = binary.AppendUvarint(dst, c.Position)
		dst = appendImage(dst, c.New)
		dst = appendImage(dst, c.Old)
	}
	return dst
}

func appendImage(dst []byte, img []Value) []byte {
	if img == nil {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	dst = binary.AppendUvarint(dst, uint64(len(img)))
	for i := range img {
		v := &img[i]
		switch {
		case v.Absent:
			dst = append(dst, wireAbsent)
		case v.Null:
			dst = append(dst, wireNull)
		case v.JSON == nil && v.lazy != nil:
			dst = append(dst, wireLazy)
			dst = appendStr(dst, v.Text)
		default:
			dst = append(dst, 0)
			dst = appendStr(dst, v.Text)
			dst = appendStr(dst, string(v.JSON))
		}
	}
	return dst
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// errBatchWire is wrapped by every decoding error of the wire form.
var errBatchWire = errors.New("decoder: malformed change batch")

// BatchDecoder decodes the wire form of AppendBatch. It keeps the newest
// Relation per table OID, so the changes of one table share one *Relation
// until its definition changes. It is not safe for concurrent use: one
// consumer owns it.
type BatchDecoder struct {
	// TypeOf resolves a column type for values rendered on demand; nil
	// renders them as text.
	TypeOf func(oid uint32) (*TypeInfo, error)
	// OnRelation, if set, is called with every relation that is new,
	// differs from the one last decoded for its OID or was marked announced,
	// before Decode returns the changes that use it.
	OnRelation func(*Relation)

	rels map[uint32]*Relation
}

// Decode returns the changes of one wire-form batch.
func (d *BatchDecoder) Decode(b []byte) ([]Change, error) {
	r := wireReader{b: b}
	if v := r.byte(); v != batchWireVersion {
		return nil, fmt.Errorf("%w: version %d", errBatchWire, v)
	}
	if d.rels == nil {
		d.rels = make(map[uint32]*Relation)
	}
	nrels := r.count()
	rels := make([]*Relation, 0, nrels)
	for range nrels {
		rel := &Relation{OID: uint32(r.uvarint()), Schema: r.str(), Table: r.str(), ReplicaIdentity: r.byte()}
		fresh := r.byte() == 1
		ncols := r.count()
		rel.Columns = make([]Column, ncols)
		for i := range rel.Columns {
			rel.Columns[i] = Column{Name: r.str(), Type: r.str(), TypeOID: uint32(r.uvarint()), Key: r.byte() == 1}
		}
		if r.err != nil {
			return nil, r.err
		}
		if old := d.rels[rel.OID]; old != nil && sameRelation(old, rel) {
			rel = old
		} else {
			d.rels[rel.OID] = rel
			fresh = true
		}
		if fresh && d.OnRelation != nil {
			d.OnRelation(rel)
		}
		rels = append(rels, rel)
	}
	n := r.count()
	batch := make([]Change, 0, n)
	for range n {
		c := Change{Kind: Kind(r.byte())}
		ri := r.uvarint()
		if ri >= uint64(len(rels)) {
			return nil, fmt.Errorf("%w: relation index %d of %d", errBatchWire, ri, len(rels))
		}
		c.Rel = rels[ri]
		c.CommitTime = time.Unix(0, r.varint()).UTC()
		c.Position = r.uvarint()
		var err error
		if c.New, err = d.image(&r, c.Rel); err != nil {
			return nil, err
		}
		if c.Old, err = d.image(&r, c.Rel); err != nil {
			return nil, err
		}
		batch = append(batch, c)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBatchWire, len(r.b))
	}
	return batch, nil
}

func (d *BatchDecoder) image(r *wireReader, rel *Relation) ([]Value, error) {
	if r.byte() == 0 {
		return nil, r.err
	}
	n := r.count()
	if r.err == nil && n != len(rel.Columns) {
		return nil, fmt.Errorf("%w: image of %d values for %d columns", errBatchWire, n, len(rel.Columns))
	}
	img := make([]Value, n)
	for i := range img {
		flags := r.byte()
		switch {
		case flags&wireAbsent != 0:
			img[i].Absent = true
		case flags&wireNull != 0:
			img[i] = Value{Null: true, JSON: []byte("null")}
		case flags&wireLazy != 0:
			text := r.str()
			var t *TypeInfo
			if d.TypeOf != nil {
				var err error
				if t, err = d.TypeOf(rel.Columns[i].TypeOID); err != nil {
					return nil, fmt.Errorf("decoder: type of %s.%s.%s: %w", rel.Schema, rel.Table, rel.Columns[i].Name, err)
				}
			}
			img[i] = Value{Text: text, lazy: &lazyJSON{typ: t}}
		default:
			img[i] = Value{Text: r.str(), JSON: []byte(r.str())}
		}
	}
	return img, r.err
}

// wireReader reads the wire form; the first error sticks and later reads
// return zero values.
type wireReader struct {
	b   []byte
	err error
}

func (r *wireReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated %s", errBatchWire, what)
	}
	r.b = nil
}

func (r *wireReader) byte() byte {
	if len(r.b) < 1 {
		r.fail("byte")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *wireReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("integer")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("integer")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length that must fit in the remaining bytes (each counted
// item takes at least one), so a corrupt length cannot allocate much.
func (r *wireReader) count() int {
	v := r.uvarint()
	if v > uint64(len(r.b)) {
		r.fail("count")
		return 0
	}
	return int(v)
}

func (r *wireReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("string")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
