package filter

import (
	"errors"
	"strings"
	"testing"
)

// testColumns covers every type family the filter knows.
var testColumns = map[string]Column{
	"id":      {Type: "int4", Selectable: true},
	"big":     {Type: "int8", Selectable: true},
	"small":   {Type: "int2", Selectable: true},
	"price":   {Type: "numeric", Selectable: true},
	"score":   {Type: "float8", Selectable: true},
	"ratio":   {Type: "float4", Selectable: true},
	"name":    {Type: "text", Selectable: true},
	"title":   {Type: "varchar", Selectable: true},
	"code":    {Type: "bpchar", Selectable: true},
	"nick":    {Type: "citext", Selectable: true},
	"label":   {Type: "name", Selectable: true},
	"active":  {Type: "bool", Selectable: true},
	"uid":     {Type: "uuid", Selectable: true},
	"at":      {Type: "timestamptz", Selectable: true},
	"local":   {Type: "timestamp", Selectable: true},
	"day":     {Type: "date", Selectable: true},
	"clock":   {Type: "time", Selectable: true},
	"clocktz": {Type: "timetz", Selectable: true},
	"doc":     {Type: "jsonb", Selectable: true},
	"raw":     {Type: "json", Selectable: true},
	"bin":     {Type: "bytea", Selectable: true},
	"tags":    {Type: "_text", Selectable: true},
	"nums":    {Type: "_int4", Selectable: true},
	"docs":    {Type: "_jsonb", Selectable: true},
	"dur":     {Type: "interval", Selectable: true},
	"mood":    {Type: "mood", Selectable: true},
	"secret":  {Type: "text", Selectable: false},
}

func mustParse(t testing.TB, s string) []Condition {
	t.Helper()
	conds, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return conds
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		conds  []Condition // used instead of filter when set
		want   string      // exact text, or a prefix when prefix is set
		prefix bool
	}{
		// Columns.
		{name: "unknown column", filter: "nope=eq.1", want: "invalid column for filter nope"},
		{name: "column not selectable", filter: "secret=eq.x", want: "invalid column for filter secret"},
		{name: "column names are case-sensitive", filter: "ID=eq.1", want: "invalid column for filter ID"},
		{name: "first failing condition reported", filter: "id=eq.1,nope=eq.2,id=eq.x", want: "invalid column for filter nope"},

		// Casts.
		{name: "integer syntax", filter: "id=eq.abc", want: `invalid input syntax for type integer: "abc"`},
		{name: "integer with a fraction", filter: "id=eq.1.5", want: `invalid input syntax for type integer: "1.5"`},
		{name: "integer out of range", filter: "id=eq.99999999999", want: `value "99999999999" is out of range for type integer`},
		{name: "smallint out of range", filter: "small=gt.40000", want: `value "40000" is out of range for type smallint`},
		{name: "bigint out of range", filter: "big=eq.9223372036854775808", want: `value "9223372036854775808" is out of range for type bigint`},
		{name: "bigint syntax", filter: "big=eq.0x10", want: `invalid input syntax for type bigint: "0x10"`},
		{name: "numeric syntax", filter: "price=eq.1.2.3", want: `invalid input syntax for type numeric: "1.2.3"`},
		{name: "numeric empty", filter: "price=eq.", want: `invalid input syntax for type numeric: ""`},
		{name: "numeric overflow", filter: "price=eq.1e131072", want: "value overflows numeric format"},
		{name: "numeric scale overflow", filter: "price=eq.1e-16384", want: "value overflows numeric format"},
		{name: "double precision syntax", filter: "score=eq.x", want: `invalid input syntax for type double precision: "x"`},
		{name: "double precision overflow", filter: "score=eq.1e400", want: `"1e400" is out of range for type double precision`},
		{name: "double precision underflow", filter: "score=eq.1e-400", want: `"1e-400" is out of range for type double precision`},
		{name: "double precision digit separators", filter: "score=eq.1_0", want: `invalid input syntax for type double precision: "1_0"`},
		{name: "real underflow", filter: "ratio=eq.1e-50", want: `"1e-50" is out of range for type real`},
		{name: "boolean syntax", filter: "active=eq.maybe", want: `invalid input syntax for type boolean: "maybe"`},
		{name: "boolean ambiguous prefix", filter: "active=eq.o", want: `invalid input syntax for type boolean: "o"`},
		{name: "uuid syntax", filter: "uid=eq.xyz", want: `invalid input syntax for type uuid: "xyz"`},
		{name: "uuid with surrounding space", filter: "uid=eq. a0eebc999c0b4ef8bb6d6bb9bd380a11", want: `invalid input syntax for type uuid: " a0eebc999c0b4ef8bb6d6bb9bd380a11"`},
		{name: "uuid misplaced hyphen", filter: "uid=eq.a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11", want: `invalid input syntax for type uuid: "a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11"`},
		{name: "timestamptz syntax", filter: "at=gt.May 1st", want: `invalid input syntax for type timestamp with time zone: "May 1st"`},
		{name: "timestamptz without a date", filter: "at=gt.10:00", want: `invalid input syntax for type timestamp with time zone: "10:00"`},
		{name: "timestamptz impossible day", filter: "at=gt.2024-02-30", want: `date/time field value out of range: "2024-02-30"`},
		{name: "timestamptz impossible hour", filter: "at=gt.2024-02-01 25:00", want: `date/time field value out of range: "2024-02-01 25:00"`},
		{name: "timestamptz past midnight", filter: "at=gt.2024-02-01 24:00:01", want: `date/time field value out of range: "2024-02-01 24:00:01"`},
		{name: "timestamptz zone out of range", filter: "at=gt.2024-05-01 10:00:00+16", want: `time zone displacement out of range: "2024-05-01 10:00:00+16"`},
		{name: "timestamptz year out of range", filter: "at=gt.300000-01-01", want: `timestamp out of range: "300000-01-01"`},
		{name: "timestamptz now is rejected", filter: "at=gt.now", want: `invalid input syntax for type timestamp with time zone: "now" (now, today, tomorrow, yesterday and allballs are not supported in filters)`},
		{name: "date year zero", filter: "day=eq.0000-01-01", want: `date/time field value out of range: "0000-01-01"`},
		{name: "date month 13", filter: "day=eq.2024-13-01", want: `date/time field value out of range: "2024-13-01"`},
		{name: "date today is rejected", filter: "day=eq.today", want: `invalid input syntax for type date: "today" (now, today, tomorrow, yesterday and allballs are not supported in filters)`},
		{name: "time syntax", filter: "clock=eq.noon", want: `invalid input syntax for type time without time zone: "noon"`},
		{name: "timetz syntax", filter: "clocktz=eq.12", want: `invalid input syntax for type time with time zone: "12"`},
		{name: "jsonb syntax", filter: `doc=eq.{a`, want: "invalid input syntax for type json"},
		{name: "jsonb trailing data", filter: `doc=eq.1 2`, want: "invalid input syntax for type json"},
		{name: "jsonb NUL escape", filter: `doc=eq."\"\\u0000\""`, want: "unsupported Unicode escape sequence"},
		{name: "bytea bad hex digit", filter: `bin=eq.\xzz`, want: `invalid hexadecimal digit: "z"`},
		{name: "bytea odd hex digits", filter: `bin=eq.\x012`, want: "invalid hexadecimal data: odd number of digits"},
		{name: "bytea bad escape", filter: `bin=eq.a\b`, want: "invalid input syntax for type bytea"},
		{name: "array syntax", filter: `nums=eq."{1,,2}"`, want: `malformed array literal: "{1,,2}"`},
		{name: "array element syntax", filter: `nums=eq."{1,x}"`, want: `invalid input syntax for type integer: "x"`},
		{name: "array not rectangular", filter: `nums=eq."{{1,2},{3}}"`, want: `malformed array literal: "{{1,2},{3}}"`},
		{name: "in element cast", filter: "id=in.(1,x)", want: `invalid input syntax for type integer: "x"`},
		{name: "isdistinct casts its value", filter: "id=isdistinct.x", want: `invalid input syntax for type integer: "x"`},
		{name: "in over 100 values", conds: []Condition{{Column: "id", Op: OpIn, List: make([]string, 100), NullInList: true}}, want: "too many values for `in` filter. Maximum 100"},

		// is.
		{name: "is with a non-keyword", filter: "active=is.maybe", want: "invalid value for is filter: must be null, true, false, or unknown"},
		{name: "is with a number", filter: "id=is.1", want: "invalid value for is filter: must be null, true, false, or unknown"},
		{name: "is true needs a boolean column", filter: "id=is.true", want: "is true filter requires a boolean column, got integer"},
		{name: "is unknown needs a boolean column", filter: "at=is.UNKNOWN", want: "is unknown filter requires a boolean column, got timestamp with time zone"},

		// Operator and type.
		{name: "like needs a text-like column", filter: "id=like.1%", want: "operator like is not supported on column id of type integer: it needs a text-like column (text, varchar, char, name or citext)"},
		{name: "ilike needs a text-like column", filter: "doc=ilike.a%", want: "operator ilike is not supported on column doc of type jsonb: it needs a text-like column (text, varchar, char, name or citext)"},
		{name: "match needs a text-like column", filter: "uid=match.^a", want: "operator match is not supported on column uid of type uuid: it needs a text-like column (text, varchar, char, name or citext)"},
		{name: "imatch needs a text-like column", filter: "mood=imatch.^a", want: "operator imatch is not supported on column mood of type mood: it needs a text-like column (text, varchar, char, name or citext)"},
		{name: "like pattern ending in escape", filter: `name=like.abc\`, want: "operator like is not supported on column name of type text: LIKE pattern must not end with escape character"},
		{name: "like piece with _ inside over its cap", filter: "name=ilike.%" + strings.Repeat("a_", MaxLikeWildPiece/2) + "b%", want: "operator ilike is not supported on column name of type text: LIKE pattern too complex: a part between % signs with _ inside may be at most 256 characters long"},
		{name: "invalid regular expression", filter: "name=match.(a", want: "invalid regular expression for match filter: error parsing regexp: missing closing ): `(a`"},
		{name: "back-references are not supported", filter: `name=imatch.(a)\1`, want: "invalid regular expression for imatch filter: ", prefix: true},
		{name: "lookahead is not supported", filter: `name=match.a(?=b)`, want: "invalid regular expression for match filter: ", prefix: true},
		{name: "json has no equality", filter: `raw=eq.{}`, want: "operator eq is not supported on column raw of type json"},
		{name: "json has no in", filter: `raw=in.(1)`, want: "operator in is not supported on column raw of type json"},
		{name: "json has no isdistinct", filter: `raw=isdistinct.1`, want: "operator isdistinct is not supported on column raw of type json"},
		{name: "jsonb has no ordering", filter: `doc=lt.1`, want: "operator lt is not supported on column doc of type jsonb"},
		{name: "interval has no ordering here", filter: "dur=gt.1 day", want: "operator gt is not supported on column dur of type interval"},
		{name: "enum has no ordering here", filter: "mood=gte.happy", want: "operator gte is not supported on column mood of type mood"},
		{name: "arrays have no in", filter: "tags=in.(a)", want: "operator in is not supported on column tags of type text[]"},
		{name: "jsonb arrays have no ordering", filter: `docs=lt.{}`, want: "operator lt is not supported on column docs of type jsonb[]"},
		{name: "invalid operator value", conds: []Condition{{Column: "id", Op: 0, Value: "1"}}, want: "unsupported equality operator: Op(0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conds := tt.conds
			if conds == nil {
				conds = mustParse(t, tt.filter)
			}
			f, err := Compile(conds, testColumns)
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("Compile(%q) = %v, %v; want *Error %q", tt.filter, f, err, tt.want)
			}
			if f != nil {
				t.Fatalf("Compile(%q) returned a filter with an error", tt.filter)
			}
			if tt.prefix && !strings.HasPrefix(fe.Error(), tt.want) || !tt.prefix && fe.Error() != tt.want {
				t.Fatalf("Compile(%q) error\n got: %q\nwant: %q", tt.filter, fe.Error(), tt.want)
			}
		})
	}
}

func TestCompileAccepts(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		text   string // canonical String()
	}{
		{"integer with whitespace and sign", "id=eq. +5 ", `id=eq." +5"`},
		{"is keywords any case", "active=is.TRUE,name=not.is.Null,active=is.unknown", "active=is.true,name=not.is.null,active=is.unknown"},
		{"is null on any type", "doc=is.null,raw=is.null,tags=is.null", "doc=is.null,raw=is.null,tags=is.null"},
		{"like on every text-like type", "name=like.a%,title=like.a%,code=like.a%,nick=ilike.a%,label=like.a%", "name=like.a%,title=like.a%,code=like.a%,nick=ilike.a%,label=like.a%"},
		{"match on text", `name=match.^a\d+$,name=not.imatch.B`, `name=match.^a\d+$,name=not.imatch.B`},
		{"numeric specials", "price=lt.NaN,price=gt.-Infinity,price=neq.inf", "price=lt.NaN,price=gt.-Infinity,price=neq.inf"},
		{"float specials", "score=lt.nan,ratio=gt.-inf", "score=lt.nan,ratio=gt.-inf"},
		{"uuid forms", `uid=in.("{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}",a0eebc999c0b4ef8bb6d6bb9bd380a11)`, `uid=in.("{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}",a0eebc999c0b4ef8bb6d6bb9bd380a11)`},
		{"timestamps", "at=gte.2024-05-01T10:00:00.5+05:30,local=lt.infinity,day=gt.epoch,clock=lt.24:00,clocktz=eq.12:00-08", "at=gte.2024-05-01T10:00:00.5+05:30,local=lt.infinity,day=gt.epoch,clock=lt.24:00,clocktz=eq.12:00-08"},
		{"BC dates", "day=gt.0044-03-15 BC", "day=gt.0044-03-15 BC"},
		{"interval and enum equality", "dur=eq.1 day,mood=in.(happy,sad)", "dur=eq.1 day,mood=in.(happy,sad)"},
		{"arrays", `nums=eq."{1,2,NULL}",tags=neq.[]`, `nums=eq."{1,2,NULL}",tags=neq.[]`},
		{"values needing quotes are quoted", `name=eq."a,b",name=eq."(x",name=eq."\"q",name=eq." pad "`, `name=eq."a,b",name=eq."(x",name=eq."\"q",name=eq." pad "`},
		{"in elements needing quotes are quoted, NULL last", `name=in.(NULL,"a,b","",x,"NULL","c\\d")`, `name=in.("a,b","",x,"NULL","c\\d",NULL)`},
		{"quoted jsonb", `doc=eq."{\"a\":[1,2]}"`, `doc=eq."{\"a\":[1,2]}"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Compile(mustParse(t, tt.filter), testColumns)
			if err != nil {
				t.Fatalf("Compile(%q): %v", tt.filter, err)
			}
			if f.String() != tt.text {
				t.Fatalf("String()\n got: %s\nwant: %s", f.String(), tt.text)
			}
			// The canonical text reads back to the same filter.
			g, err := Compile(mustParse(t, f.String()), testColumns)
			if err != nil {
				t.Fatalf("re-Compile(%q): %v", f.String(), err)
			}
			if g.String() != f.String() {
				t.Fatalf("round trip changed the filter: %s -> %s", f.String(), g.String())
			}
		})
	}
}

func TestCompileNothing(t *testing.T) {
	f, err := Compile(nil, testColumns)
	if err != nil || f != nil {
		t.Fatalf("Compile(nil) = %v, %v; want nil, nil", f, err)
	}
	if !f.Match(rowOf("id", "1")) {
		t.Fatal("nil filter must match everything")
	}
	if f.String() != "" || f.Columns() != nil {
		t.Fatalf("nil filter: String %q, Columns %v", f.String(), f.Columns())
	}
	conds, err := Parse("   ")
	if err != nil || conds != nil {
		t.Fatalf("Parse(blank) = %v, %v", conds, err)
	}
}

func TestColumns(t *testing.T) {
	f, err := Compile(mustParse(t, "name=eq.a,id=gt.1,name=neq.b,at=is.null"), testColumns)
	if err != nil {
		t.Fatal(err)
	}
	cols := f.Columns()
	if strings.Join(cols, ",") != "name,id,at" {
		t.Fatalf("Columns() = %v", cols)
	}
	cols[0] = "changed"
	if f.Columns()[0] != "name" {
		t.Fatal("Columns() must return a copy")
	}
}
