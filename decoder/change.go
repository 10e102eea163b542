package decoder

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
)

// LSN is a PostgreSQL write-ahead-log position. Its String form is the
// server's "XXX/XXXXXXXX" notation; it implements sql.Scanner and
// driver.Valuer.
type LSN = pglogrepl.LSN

// ParseLSN parses the "XXX/XXXXXXXX" form of an LSN.
func ParseLSN(s string) (LSN, error) {
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		return 0, fmt.Errorf("decoder: parse lsn %q: %w", s, err)
	}
	return lsn, nil
}

// Kind is the kind of a row change.
type Kind uint8

// The row change kinds. TRUNCATE is not a change kind: sources drop it.
const (
	Insert Kind = iota + 1 // a row was inserted
	Update                 // a row was updated
	Delete                 // a row was deleted
)

// String returns "INSERT", "UPDATE" or "DELETE" (the protocol's data.type), or
// "UNKNOWN" for any other value.
func (k Kind) String() string {
	switch k {
	case Insert:
		return "INSERT"
	case Update:
		return "UPDATE"
	case Delete:
		return "DELETE"
	}
	return "UNKNOWN"
}

// Column describes one column of a Relation.
type Column struct {
	// Name is the column name (pg_attribute.attname).
	Name string
	// Type is pg_type.typname of the column type: int8, _text, my_enum...
	// Arrays have the leading underscore; domains, enums and composites
	// carry their own name.
	Type string
	// TypeOID is the column's type OID.
	TypeOID uint32
	// Key reports that the column is part of the replica identity key.
	Key bool
}

// Relation describes a published table as the source last announced it.
// A *Relation is an immutable snapshot: a schema change produces a new
// value, the old one is never mutated, so it may be shared freely between
// goroutines.
type Relation struct {
	// OID is the table's pg_class OID.
	OID uint32
	// Schema and Table name the table.
	Schema, Table string
	// Columns are the published columns in attnum order.
	Columns []Column
	// ReplicaIdentity is pg_class.relreplident: 'd' default (primary key),
	// 'f' full, 'n' nothing, 'i' index.
	ReplicaIdentity byte
}

// ColumnIndex returns the index of the named column, or -1.
func (r *Relation) ColumnIndex(name string) int {
	for i := range r.Columns {
		if r.Columns[i].Name == name {
			return i
		}
	}
	return -1
}

// Value is one column value of a row image. It never aliases a receive
// buffer and is never mutated after the Change holding it was built.
type Value struct {
	// Absent means the column is not part of this row image: an unchanged
	// TOASTed value in a new image, or a non-key column of a key-only old
	// image. Text and JSON are empty then.
	Absent bool
	// Null means SQL NULL; JSON is then `null` and Text is empty.
	Null bool
	// Text is the PostgreSQL text output form of the value, produced with
	// TimeZone=UTC, DateStyle=ISO, IntervalStyle=postgres,
	// extra_float_digits=1 and bytea_output=hex.
	Text string
	// JSON is the value rendered as docs/protocol.md §4.3 prescribes (see
	// [Render]): 10.50, "2024-05-01T10:00:00+00:00", {"a": 1}, null. It
	// is nil for a value the decoder left unrendered (over
	// [LazyRenderBytes]); read it through [Value.RenderedJSON].
	JSON []byte
	// lazy is set for a value whose JSON is rendered on demand; copies of
	// the value share it, so it is rendered at most once.
	lazy *lazyJSON
}

// lazyJSON is the rendering of one large value, made on first use.
type lazyJSON struct {
	typ  *TypeInfo
	once sync.Once
	json []byte // set by once; read-only afterwards
}

// LazyRenderBytes is the text size above which the logical decoder leaves
// a value's JSON unrendered: a large value is rendered once, when a
// subscriber or an SSE resume is first sent it, so a large row nobody may
// read costs the ordered change stream a copy, not a rendering
// (docs/benchmarks.md, "Soak").
const LazyRenderBytes = 64 << 10

// TextValue returns the value of a column in text form, rendered now or,
// over LazyRenderBytes, on demand.
func TextValue(text string, t *TypeInfo) Value {
	if len(text) > LazyRenderBytes {
		return Value{Text: text, lazy: &lazyJSON{typ: t}}
	}
	return Value{Text: text, JSON: Render(text, t)}
}

// RenderedJSON returns the value's JSON: JSON, or for a value rendered on
// demand its rendering, made once by the first caller (safe for
// concurrent use; callers must not modify it).
func (v *Value) RenderedJSON() []byte {
	if v.JSON == nil && v.lazy != nil {
		l := v.lazy
		l.once.Do(func() { l.json = Render(v.Text, l.typ) })
		return l.json
	}
	return v.JSON
}

// JSONLen returns len(RenderedJSON()) without rendering: exact for a
// rendered value, an estimate (the text length plus two) for one rendered
// on demand, for memory accounting.
func (v *Value) JSONLen() int {
	if v.JSON == nil && v.lazy != nil {
		return len(v.Text) + 2
	}
	return len(v.JSON)
}

// Change is one row change of a committed transaction.
type Change struct {
	// Kind is INSERT, UPDATE or DELETE.
	Kind Kind
	// Rel is the table as known when the change was decoded (an immutable
	// snapshot, see Relation).
	Rel *Relation
	// CommitTime is the commit time of the change's transaction, in UTC.
	CommitTime time.Time
	// Position is the source cursor of the change's transaction: for the
	// logical source the commit end LSN. All changes of one transaction
	// share it and it never decreases from one transaction to the next.
	Position uint64
	// New is the new row image (INSERT, UPDATE), aligned with Rel.Columns;
	// nil for DELETE.
	New []Value
	// Old is the old row image (UPDATE, DELETE), aligned with Rel.Columns,
	// or nil when the source has no old image (e.g. an UPDATE on a table
	// with default replica identity that did not change the key). With a
	// key-only image, non-key columns are Absent.
	Old []Value
}

// Sink receives batches of changes from a Source. It returns after the
// batch has been fanned out; only then may the source confirm the batch's
// positions to the database. A non-nil error makes the source redeliver the
// batch later. The batch and its changes belong to the sink once passed
// (the source does not reuse them), but the sink must not modify them if it
// shares them with other goroutines.
type Sink func(ctx context.Context, batch []Change) error

// Status is a point-in-time view of a Source, for health checks and
// metrics.
type Status struct {
	// Kind is "logical" or "notify".
	Kind string
	// Slot and Publication name the replication slot and publication
	// (logical source only).
	Slot        string
	Publication string
	// Connected reports that the source is streaming right now.
	Connected bool
	// ReceivedPosition is the newest commit position received.
	ReceivedPosition uint64
	// ConfirmedPosition is the newest position confirmed to the database
	// (everything up to it has been delivered to the sink).
	ConfirmedPosition uint64
	// ServerPosition is the newest WAL position the server reported on the
	// stream (keepalives carry how far it has decoded).
	ServerPosition uint64
	// LagBytes is ServerPosition - ConfirmedPosition, never negative.
	LagBytes int64
	// LastCommitTime is the commit time of the newest delivered transaction.
	LastCommitTime time.Time
	// LastError is the error that ended the last session, "" if none.
	LastError string
	// LastErrorTime is when LastError happened.
	LastErrorTime time.Time
	// ConnectedSince is when the current streaming session started; zero
	// when not connected.
	ConnectedSince time.Time
	// Sessions counts streaming sessions started (1 + reconnects).
	Sessions int64
	// Transactions and Changes count what was delivered to the sink
	// (a redelivered transaction counts again).
	Transactions int64
	Changes      int64
	// VisibilityWaits counts batches whose sink waited for their commits to
	// become visible (it read live rows: docs/protocol.md §4.5); logical
	// source only.
	VisibilityWaits int64
}

// Source is a producer of row changes.
type Source interface {
	// Run streams changes to sink until ctx ends, reconnecting internally
	// on errors. It returns nil when ctx ends, or an error at once if the
	// configuration is unusable. A Source runs at most once at a time.
	Run(ctx context.Context, sink Sink) error
	// Status reports the source's state. It is safe for concurrent use.
	Status() Status
}
