package filter

import (
	"errors"
	"regexp"
	"strings"
	"unicode"
)

// Column describes a column of the subscribed table.
type Column struct {
	Type       string // pg_type.typname: int4, text, timestamptz, _int4, an enum name, …
	Selectable bool   // the subscriber's role may SELECT it
}

// Value is a column value in PostgreSQL text output form (as pgoutput sends
// it, e.g. "t", "2024-05-01 10:00:00+00", "10.50") or in the form a jsonb
// rendering produces ("true", "2024-05-01T10:00:00+00:00"); both are
// accepted. Null is SQL NULL (Text is then ignored).
type Value struct {
	Null bool
	Text string
}

// Row is a row image a filter is tested against.
type Row interface {
	// Lookup returns a column's value; false means the column is absent
	// from the image (e.g. an unchanged TOAST value), which fails the filter.
	Lookup(column string) (Value, bool)
}

// Filter is a compiled filter. It is immutable and safe for concurrent use;
// a nil *Filter matches every row.
type Filter struct {
	conds []compiled
	text  string
	cols  []string
}

type compiled struct {
	column string
	eval   pred
}

// Compile type-checks parsed conditions against the table's columns and
// compiles every value to a typed constant, doing at subscribe time what the
// real server's subscription trigger does: the column must exist and be
// selectable, the value must cast to the column type, `is` takes
// null/true/false/unknown (any case; the non-null ones need a bool column),
// like/ilike/match/imatch need a text-like column (match/imatch also a valid
// regular expression), and the operator must apply to the type. Conditions
// are checked in order and the first failure is returned as an *Error (see
// the package documentation for the texts). Compile of no conditions returns
// nil, which matches everything. conds and cols are only read; the filter
// keeps no reference to them.
func Compile(conds []Condition, cols map[string]Column) (*Filter, error) {
	if len(conds) == 0 {
		return nil, nil
	}
	f := &Filter{conds: make([]compiled, 0, len(conds))}
	var text strings.Builder
	seen := make(map[string]bool, len(conds))
	for i, c := range conds {
		col, ok := cols[c.Column]
		if !ok || !col.Selectable {
			return nil, &Error{Msg: "invalid column for filter " + c.Column}
		}
		if c.Op == OpIs {
			c.Value = strings.ToLower(c.Value)
		}
		p, err := compileCond(c, col.Type)
		if err != nil {
			return nil, err
		}
		if c.Negate {
			p = negate(p)
		}
		f.conds = append(f.conds, compiled{column: c.Column, eval: p})
		if !seen[c.Column] {
			seen[c.Column] = true
			f.cols = append(f.cols, c.Column)
		}
		if i > 0 {
			text.WriteByte(',')
		}
		writeCondition(&text, c)
	}
	f.text = text.String()
	return f, nil
}

func negate(p pred) pred {
	return func(v Value) tri {
		switch p(v) {
		case triTrue:
			return triFalse
		case triFalse:
			return triTrue
		}
		return triUnknown
	}
}

func unsupportedOp(c Condition, t colType, why string) error {
	msg := "operator " + c.Op.String() + " is not supported on column " + c.Column + " of type " + t.sqlName()
	if why != "" {
		msg += ": " + why
	}
	return &Error{Msg: msg}
}

func compileCond(c Condition, typname string) (pred, error) {
	t := typeFor(typname)
	switch c.Op {
	case OpIs:
		return compileIs(c, typname, t)
	case OpLike, OpILike, OpMatch, OpIMatch:
		if !textLike(typname) {
			return nil, unsupportedOp(c, t, "it needs a text-like column (text, varchar, char, name or citext)")
		}
		// citext compares, likes and matches case-insensitively. The pattern
		// is cast to the column type, which for bpchar drops trailing spaces
		// (the row value keeps its padding).
		fold := c.Op == OpILike || c.Op == OpIMatch || typname == "citext"
		pat := c.Value
		if typname == "bpchar" {
			pat = trimTrailingSpaces(pat)
		}
		if c.Op == OpLike || c.Op == OpILike {
			return compileLikeCond(c, t, pat, fold)
		}
		return compileRegexCond(c, pat, fold)
	case OpEq, OpNeq, OpLt, OpLte, OpGt, OpGte, OpIn, OpIsDistinct:
		p, err := t.compileCompare(c)
		if errors.Is(err, errUnsupported) {
			return nil, unsupportedOp(c, t, "")
		}
		return p, err
	}
	return nil, &Error{Msg: "unsupported equality operator: " + c.Op.String()}
}

func compileIs(c Condition, typname string, t colType) (pred, error) {
	switch c.Value {
	case "null":
		return func(v Value) tri { return triOf(v.Null) }, nil
	case "true", "false", "unknown":
	default:
		return nil, &Error{Msg: "invalid value for is filter: must be null, true, false, or unknown"}
	}
	if typname != "bool" {
		return nil, &Error{Msg: "is " + c.Value + " filter requires a boolean column, got " + t.sqlName()}
	}
	want := c.Value
	return func(v Value) tri {
		if v.Null {
			return triOf(want == "unknown")
		}
		b, err := parseBool(v.Text)
		if err != nil {
			return triUnknown
		}
		return triOf((want == "true" && b) || (want == "false" && !b))
	}, nil
}

func compileLikeCond(c Condition, t colType, pat string, fold bool) (pred, error) {
	lp, err := compileLike(pat, fold)
	if err != nil {
		return nil, unsupportedOp(c, t, err.Error())
	}
	return func(v Value) tri {
		if v.Null {
			return triUnknown
		}
		return triOf(lp.match(v.Text))
	}, nil
}

func compileRegexCond(c Condition, pat string, fold bool) (pred, error) {
	if fold {
		pat = "(?i)" + pat
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, &Error{Msg: "invalid regular expression for " + c.Op.String() + " filter: " + err.Error()}
	}
	return func(v Value) tri {
		if v.Null {
			return triUnknown
		}
		return triOf(re.MatchString(v.Text))
	}, nil
}

// Match reports whether a row passes the filter: every condition must be
// true (SQL three-valued AND; NULL comparisons are unknown, and unknown is
// not delivered), and a condition whose column is absent from the row fails.
// A row value that does not parse as its column type makes its condition
// unknown. A nil *Filter matches everything. Safe for concurrent use; it
// does not retain r.
func (f *Filter) Match(r Row) bool {
	if f == nil {
		return true
	}
	for i := range f.conds {
		c := &f.conds[i]
		v, ok := r.Lookup(c.column)
		if !ok || c.eval(v) != triTrue {
			return false
		}
	}
	return true
}

// String returns the filter in canonical filter syntax, for display and
// logs: `is` keywords in lower case, values quoted only where needed, NULL
// elements of an `in` list last. Parsing it again gives an equivalent filter
// (for column names without ',' '=' '(' ')' or surrounding spaces). A nil
// *Filter gives "".
func (f *Filter) String() string {
	if f == nil {
		return ""
	}
	return f.text
}

// Columns returns the distinct columns the filter reads, in order of first
// use. The caller owns the returned slice. A nil *Filter gives nil.
func (f *Filter) Columns() []string {
	if f == nil {
		return nil
	}
	return append([]string(nil), f.cols...)
}

// writeCondition writes c in filter syntax, quoting values so that Parse
// reads them back unchanged.
func writeCondition(b *strings.Builder, c Condition) {
	b.WriteString(c.Column)
	b.WriteByte('=')
	if c.Negate {
		b.WriteString("not.")
	}
	b.WriteString(c.Op.String())
	b.WriteByte('.')
	if c.Op != OpIn {
		if needsQuotes(c.Value) {
			writeQuoted(b, c.Value)
		} else {
			b.WriteString(c.Value)
		}
		return
	}
	b.WriteByte('(')
	for i, e := range c.List {
		if i > 0 {
			b.WriteByte(',')
		}
		if e == "" || strings.EqualFold(e, "NULL") || strings.ContainsAny(e, "{}(),\"\\") || strings.IndexFunc(e, isAnySpace) >= 0 {
			writeQuoted(b, e)
		} else {
			b.WriteString(e)
		}
	}
	if c.NullInList {
		if len(c.List) > 0 {
			b.WriteByte(',')
		}
		b.WriteString("NULL")
	}
	b.WriteByte(')')
}

func isAnySpace(r rune) bool { return unicode.IsSpace(r) || elixirSpace(r) }

// needsQuotes reports whether a non-`in` value must be quoted to survive
// splitting, trimming and unquoting.
func needsQuotes(v string) bool {
	return strings.ContainsAny(v, ",()\"") || elixirTrim(v) != v
}

func writeQuoted(b *strings.Builder, v string) {
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
}
