package decoder

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// TypeInfo describes a PostgreSQL data type as far as [Render] needs it.
// Values handed out by [TypeCache] and [BuiltinType] are shared and must not
// be modified; they are safe for concurrent use.
type TypeInfo struct {
	// OID is pg_type.oid.
	OID uint32
	// Name is pg_type.typname (arrays have the leading underscore).
	Name string
	// Kind is pg_type.typtype: 'b' base, 'c' composite, 'd' domain,
	// 'e' enum, 'p' pseudo, 'r' range, 'm' multirange.
	Kind byte
	// Category is pg_type.typcategory ('A' array, 'N' numeric, ...).
	Category byte
	// Delim is pg_type.typdelim, the separator between array elements of
	// this type (',' for all but box).
	Delim byte
	// Elem is the element type when this is an array type, else nil.
	Elem *TypeInfo
	// Base is the base type when this is a domain, else nil.
	Base *TypeInfo
	// Attrs are the attributes of a composite type in attnum order,
	// dropped ones skipped; nil when unknown or not composite.
	Attrs []Attribute
}

// Attribute is one attribute of a composite type.
type Attribute struct {
	Name string
	Type *TypeInfo
}

// Built-in type OIDs the renderer treats specially (fixed in every
// PostgreSQL installation).
const (
	oidBool        = pgtype.BoolOID
	oidBytea       = pgtype.ByteaOID
	oidInt8        = pgtype.Int8OID
	oidInt2        = pgtype.Int2OID
	oidInt2Vector  = 22
	oidInt4        = pgtype.Int4OID
	oidOIDVector   = 30
	oidJSON        = pgtype.JSONOID
	oidFloat4      = pgtype.Float4OID
	oidFloat8      = pgtype.Float8OID
	oidBPChar      = pgtype.BPCharOID
	oidBPCharArray = pgtype.BPCharArrayOID
	oidTimestamp   = pgtype.TimestampOID
	oidTimestamptz = pgtype.TimestamptzOID
	oidBit         = pgtype.BitOID
	oidBitArray    = pgtype.BitArrayOID
	oidNumeric     = pgtype.NumericOID
	oidJSONB       = pgtype.JSONBOID

	// firstNormalOID is PostgreSQL's FirstNormalObjectId: OIDs below it
	// belong to objects created by initdb.
	firstNormalOID = 16384
)

// builtinTypes lists common built-in types: name, oid, array oid,
// typtype, typcategory. The array types are derived from it.
var builtinTypes = []struct {
	name     string
	oid      uint32
	arrayOID uint32
	kind     byte
	category byte
}{
	{"bool", pgtype.BoolOID, pgtype.BoolArrayOID, 'b', 'B'},
	{"bytea", pgtype.ByteaOID, pgtype.ByteaArrayOID, 'b', 'U'},
	{"char", pgtype.QCharOID, pgtype.QCharArrayOID, 'b', 'Z'},
	{"name", pgtype.NameOID, pgtype.NameArrayOID, 'b', 'S'},
	{"int8", pgtype.Int8OID, pgtype.Int8ArrayOID, 'b', 'N'},
	{"int2", pgtype.Int2OID, pgtype.Int2ArrayOID, 'b', 'N'},
	{"int4", pgtype.Int4OID, pgtype.Int4ArrayOID, 'b', 'N'},
	{"text", pgtype.TextOID, pgtype.TextArrayOID, 'b', 'S'},
	{"oid", pgtype.OIDOID, pgtype.OIDArrayOID, 'b', 'N'},
	{"json", pgtype.JSONOID, pgtype.JSONArrayOID, 'b', 'U'},
	{"xml", pgtype.XMLOID, pgtype.XMLArrayOID, 'b', 'U'},
	{"point", pgtype.PointOID, pgtype.PointArrayOID, 'b', 'G'},
	{"cidr", pgtype.CIDROID, pgtype.CIDRArrayOID, 'b', 'I'},
	{"float4", pgtype.Float4OID, pgtype.Float4ArrayOID, 'b', 'N'},
	{"float8", pgtype.Float8OID, pgtype.Float8ArrayOID, 'b', 'N'},
	{"money", 790, 791, 'b', 'N'},
	{"macaddr", pgtype.MacaddrOID, pgtype.MacaddrArrayOID, 'b', 'U'},
	{"inet", pgtype.InetOID, pgtype.InetArrayOID, 'b', 'I'},
	{"bpchar", pgtype.BPCharOID, pgtype.BPCharArrayOID, 'b', 'S'},
	{"varchar", pgtype.VarcharOID, pgtype.VarcharArrayOID, 'b', 'S'},
	{"date", pgtype.DateOID, pgtype.DateArrayOID, 'b', 'D'},
	{"time", pgtype.TimeOID, pgtype.TimeArrayOID, 'b', 'D'},
	{"timestamp", pgtype.TimestampOID, pgtype.TimestampArrayOID, 'b', 'D'},
	{"timestamptz", pgtype.TimestamptzOID, pgtype.TimestamptzArrayOID, 'b', 'D'},
	{"interval", pgtype.IntervalOID, pgtype.IntervalArrayOID, 'b', 'T'},
	{"timetz", pgtype.TimetzOID, pgtype.TimetzArrayOID, 'b', 'D'},
	{"bit", pgtype.BitOID, pgtype.BitArrayOID, 'b', 'V'},
	{"varbit", pgtype.VarbitOID, pgtype.VarbitArrayOID, 'b', 'V'},
	{"numeric", pgtype.NumericOID, pgtype.NumericArrayOID, 'b', 'N'},
	{"uuid", pgtype.UUIDOID, pgtype.UUIDArrayOID, 'b', 'U'},
	{"tsvector", pgtype.TSVectorOID, pgtype.TSVectorArrayOID, 'b', 'U'},
	{"jsonb", pgtype.JSONBOID, pgtype.JSONBArrayOID, 'b', 'U'},
	{"int4range", pgtype.Int4rangeOID, pgtype.Int4rangeArrayOID, 'r', 'R'},
	{"numrange", pgtype.NumrangeOID, pgtype.NumrangeArrayOID, 'r', 'R'},
	{"tsrange", pgtype.TsrangeOID, pgtype.TsrangeArrayOID, 'r', 'R'},
	{"tstzrange", pgtype.TstzrangeOID, pgtype.TstzrangeArrayOID, 'r', 'R'},
	{"daterange", pgtype.DaterangeOID, pgtype.DaterangeArrayOID, 'r', 'R'},
	{"int8range", pgtype.Int8rangeOID, pgtype.Int8rangeArrayOID, 'r', 'R'},
}

var (
	builtinByOID  map[uint32]*TypeInfo
	builtinByName map[string]*TypeInfo
)

func init() {
	builtinByOID = make(map[uint32]*TypeInfo, 2*len(builtinTypes))
	builtinByName = make(map[string]*TypeInfo, 2*len(builtinTypes))
	for _, b := range builtinTypes {
		t := &TypeInfo{OID: b.oid, Name: b.name, Kind: b.kind, Category: b.category, Delim: ','}
		a := &TypeInfo{OID: b.arrayOID, Name: "_" + b.name, Kind: 'b', Category: 'A', Delim: ',', Elem: t}
		for _, x := range []*TypeInfo{t, a} {
			builtinByOID[x.OID] = x
			builtinByName[x.Name] = x
		}
	}
}

// BuiltinType returns the TypeInfo of a common built-in type or array type
// by typname ("int4", "_text", "timestamptz", ...), or nil if it is not in
// the built-in table. The result is shared; do not modify it.
func BuiltinType(typname string) *TypeInfo { return builtinByName[typname] }

// Querier is what the type cache needs from a database handle; *pgx.Conn and
// *pgxpool.Pool satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// TypeCache caches TypeInfo by OID. It starts with the built-in table and
// loads other types (with the element, base and attribute types they
// reference) from pg_type on a miss. It is safe for concurrent use.
type TypeCache struct {
	mu    sync.RWMutex         // guards types
	types map[uint32]*TypeInfo // immutable values, replaced on reload
}

// NewTypeCache returns a cache holding the built-in types.
func NewTypeCache() *TypeCache {
	c := &TypeCache{types: make(map[uint32]*TypeInfo, len(builtinByOID))}
	for oid, t := range builtinByOID {
		c.types[oid] = t
	}
	return c
}

// Lookup returns the cached type, or nil. It never queries.
func (c *TypeCache) Lookup(oid uint32) *TypeInfo {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.types[oid]
}

// Get returns the type with the given OID, loading it through q on a miss.
// It blocks on the query; it fails if the type does not exist.
func (c *TypeCache) Get(ctx context.Context, q Querier, oid uint32) (*TypeInfo, error) {
	if t := c.Lookup(oid); t != nil {
		return t, nil
	}
	if err := c.Load(ctx, q, oid); err != nil {
		return nil, err
	}
	if t := c.Lookup(oid); t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("decoder: type %d not found", oid)
}

// Invalidate drops the type with the given OID and every cached type that
// refers to it, so the next Get reloads them. Built-in types stay.
func (c *TypeCache) Invalidate(oid uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, t := range c.types {
		if k >= firstNormalOID && refersTo(t, oid, 0) {
			delete(c.types, k)
		}
	}
}

// refersTo reports whether t is, or is built from, the type oid.
func refersTo(t *TypeInfo, oid uint32, depth int) bool {
	if t == nil || depth > maxTypeDepth {
		return false
	}
	if t.OID == oid {
		return true
	}
	if refersTo(t.Elem, oid, depth+1) || refersTo(t.Base, oid, depth+1) {
		return true
	}
	for _, a := range t.Attrs {
		if refersTo(a.Type, oid, depth+1) {
			return true
		}
	}
	return false
}

// maxTypeDepth bounds the nesting of element/base/attribute references
// followed while rendering or walking types.
const maxTypeDepth = 32

type typeRow struct {
	oid       uint32
	name      string
	kind      string
	category  string
	delim     string
	elem      uint32
	base      uint32
	attNames  []string
	attTypes  []uint32
	composite bool
}

const typeQuery = `SELECT t.oid, t.typname::text, t.typtype::text, t.typcategory::text, t.typdelim::text,
  CASE WHEN t.typlen = -1 AND t.typelem <> 0 THEN t.typelem ELSE 0::oid END,
  t.typbasetype, t.typrelid <> 0,
  ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
  ARRAY(SELECT a.atttypid FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
FROM pg_catalog.pg_type t WHERE t.oid = ANY($1::oid[])`

// Load loads the given types, and the types they reference, that are not
// cached yet. It blocks on queries through q.
func (c *TypeCache) Load(ctx context.Context, q Querier, oids ...uint32) error {
	rows := map[uint32]*typeRow{}
	var pending []uint32
	want := func(oid uint32) {
		if oid == 0 || rows[oid] != nil || c.Lookup(oid) != nil {
			return
		}
		for _, p := range pending {
			if p == oid {
				return
			}
		}
		pending = append(pending, oid)
	}
	for _, oid := range oids {
		want(oid)
	}
	for round := 0; len(pending) > 0; round++ {
		if round > maxTypeDepth {
			return fmt.Errorf("decoder: load types: references nested too deeply")
		}
		batch := pending
		pending = nil
		got, err := queryTypes(ctx, q, batch)
		if err != nil {
			return err
		}
		for _, oid := range batch {
			r := got[oid]
			if r == nil {
				return fmt.Errorf("decoder: load types: type %d not found", oid)
			}
			rows[oid] = r
		}
		for _, oid := range batch {
			r := rows[oid]
			want(r.elem)
			if r.kind == "d" {
				want(r.base)
			}
			for _, a := range r.attTypes {
				want(a)
			}
		}
	}
	if len(rows) == 0 {
		return nil
	}
	built := make(map[uint32]*TypeInfo, len(rows))
	for oid, r := range rows {
		built[oid] = &TypeInfo{OID: oid, Name: r.name, Kind: firstByte(r.kind), Category: firstByte(r.category), Delim: firstByte(r.delim)}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ref := func(oid uint32) *TypeInfo {
		if t := built[oid]; t != nil {
			return t
		}
		return c.types[oid]
	}
	for oid, r := range rows {
		t := built[oid]
		if r.elem != 0 {
			t.Elem = ref(r.elem)
		}
		if r.kind == "d" && r.base != 0 {
			t.Base = ref(r.base)
		}
		if r.composite {
			t.Attrs = make([]Attribute, len(r.attNames))
			for i := range r.attNames {
				t.Attrs[i] = Attribute{Name: r.attNames[i], Type: ref(r.attTypes[i])}
			}
		}
	}
	for oid, t := range built {
		c.types[oid] = t
	}
	return nil
}

func queryTypes(ctx context.Context, q Querier, oids []uint32) (map[uint32]*typeRow, error) {
	if q == nil {
		return nil, fmt.Errorf("decoder: load types %v: no database", oids)
	}
	rs, err := q.Query(ctx, typeQuery, oids)
	if err != nil {
		return nil, fmt.Errorf("decoder: load types %v: %w", oids, err)
	}
	defer rs.Close()
	out := make(map[uint32]*typeRow, len(oids))
	for rs.Next() {
		r := new(typeRow)
		if err := rs.Scan(&r.oid, &r.name, &r.kind, &r.category, &r.delim, &r.elem, &r.base, &r.composite, &r.attNames, &r.attTypes); err != nil {
			return nil, fmt.Errorf("decoder: load types %v: %w", oids, err)
		}
		if len(r.attNames) != len(r.attTypes) {
			return nil, fmt.Errorf("decoder: load types: attribute lists of type %d disagree", r.oid)
		}
		out[r.oid] = r
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("decoder: load types %v: %w", oids, err)
	}
	return out, nil
}

func firstByte(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}
