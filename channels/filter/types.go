package filter

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
)

// tri is an SQL three-valued truth value.
type tri uint8

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

func triOf(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

// pred evaluates one condition against a present column value.
type pred func(v Value) tri

// colType is what Compile needs from a column type for the comparison
// operators (eq neq lt lte gt gte in isdistinct).
type colType interface {
	// sqlName is the type as PostgreSQL's regtype prints it ("integer").
	sqlName() string
	// compileCompare compiles a comparison condition; the error is the
	// client text (without the column check, done by the caller).
	compileCompare(c Condition) (pred, error)
}

// scalar is a column type whose values parse to T and compare with cmp.
// parse accepts PostgreSQL input syntax (which covers both the pgoutput text
// form and the jsonb rendering); it is used for the filter's constants at
// Compile and for row values at Match.
type scalar[T any] struct {
	name    string
	parse   func(string) (T, error)
	cmp     func(a, b T) int // must return 0 exactly for equal values
	ordered bool             // lt/lte/gt/gte are meaningful
	noIn    bool             // `in` does not apply (arrays: no T = ANY(T[]))
}

func (s *scalar[T]) sqlName() string { return s.name }

// errUnsupported reports an operator that does not apply to a column type;
// Compile turns it into the client text.
var errUnsupported = errors.New("unsupported")

func (s *scalar[T]) compileCompare(c Condition) (pred, error) {
	switch c.Op {
	case OpIn:
		if s.noIn {
			return nil, errUnsupported
		}
		if len(c.List)+boolToInt(c.NullInList) > MaxInValues {
			return nil, &Error{Msg: tooManyValues}
		}
		ks := make([]T, 0, len(c.List))
		for _, e := range c.List {
			k, err := s.parse(e)
			if err != nil {
				return nil, err
			}
			ks = append(ks, k)
		}
		hasNull := c.NullInList
		return func(v Value) tri {
			if v.Null {
				return triUnknown
			}
			x, err := s.parse(v.Text)
			if err != nil {
				return triUnknown
			}
			for _, k := range ks {
				if s.cmp(x, k) == 0 {
					return triTrue
				}
			}
			if hasNull {
				return triUnknown
			}
			return triFalse
		}, nil
	case OpLt, OpLte, OpGt, OpGte:
		if !s.ordered {
			return nil, errUnsupported
		}
	case OpEq, OpNeq, OpIsDistinct:
	default:
		return nil, errUnsupported
	}
	k, err := s.parse(c.Value)
	if err != nil {
		return nil, err
	}
	var test func(int) bool
	switch c.Op {
	case OpEq:
		test = func(r int) bool { return r == 0 }
	case OpNeq:
		test = func(r int) bool { return r != 0 }
	case OpLt:
		test = func(r int) bool { return r < 0 }
	case OpLte:
		test = func(r int) bool { return r <= 0 }
	case OpGt:
		test = func(r int) bool { return r > 0 }
	case OpGte:
		test = func(r int) bool { return r >= 0 }
	case OpIsDistinct:
		return func(v Value) tri {
			if v.Null {
				return triTrue // NULL IS DISTINCT FROM a non-null constant
			}
			x, err := s.parse(v.Text)
			if err != nil {
				return triUnknown
			}
			return triOf(s.cmp(x, k) != 0)
		}, nil
	}
	return func(v Value) tri {
		if v.Null {
			return triUnknown
		}
		x, err := s.parse(v.Text)
		if err != nil {
			return triUnknown
		}
		return triOf(test(s.cmp(x, k)))
	}, nil
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// noEquality is a type without an equality operator (json, xml, …): only
// `is` applies to it.
type noEquality struct{ name string }

func (n noEquality) sqlName() string                        { return n.name }
func (n noEquality) compileCompare(Condition) (pred, error) { return nil, errUnsupported }

// ---- integers, floats, booleans ----

func intType(name string, bits int) *scalar[int64] {
	return &scalar[int64]{
		name: name,
		parse: func(s string) (int64, error) {
			t := trimPGSpace(s)
			i := 0
			if i < len(t) && (t[i] == '+' || t[i] == '-') {
				i++
			}
			if i == len(t) {
				return 0, syntaxErr(name, s)
			}
			for ; i < len(t); i++ {
				if !isDigit(t[i]) {
					return 0, syntaxErr(name, s)
				}
			}
			v, err := strconv.ParseInt(t, 10, bits)
			if err != nil {
				return 0, &Error{Msg: `value "` + s + `" is out of range for type ` + name}
			}
			return v, nil
		},
		cmp:     cmp.Compare[int64],
		ordered: true,
	}
}

func floatType(name string, bits int) *scalar[float64] {
	return &scalar[float64]{
		name:    name,
		parse:   func(s string) (float64, error) { return parseFloat(s, bits, name) },
		cmp:     cmpFloat,
		ordered: true,
	}
}

// parseFloat parses PostgreSQL float4/float8 input (strtod syntax plus NaN,
// [+-]Infinity and [+-]inf in any case; over- and underflow are errors).
func parseFloat(s string, bits int, name string) (float64, error) {
	t := trimPGSpace(s)
	if t == "" {
		return 0, syntaxErr(name, s)
	}
	if c := t[0]; !isDigit(c) && c != '.' {
		body := t
		sign := 1.0
		if c == '+' || c == '-' {
			body = t[1:]
			if c == '-' {
				sign = -1
			}
		}
		switch {
		case strings.EqualFold(body, "nan"):
			return nan, nil
		case strings.EqualFold(body, "infinity"), strings.EqualFold(body, "inf"):
			return sign * inf, nil
		}
	}
	if strings.IndexByte(t, '_') >= 0 { // Go accepts digit separators, strtod does not
		return 0, syntaxErr(name, s)
	}
	f, err := strconv.ParseFloat(t, bits)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, &Error{Msg: `"` + s + `" is out of range for type ` + name}
		}
		return 0, syntaxErr(name, s)
	}
	if f == 0 && nonZeroMantissa(t) {
		return 0, &Error{Msg: `"` + s + `" is out of range for type ` + name}
	}
	return f, nil
}

// nonZeroMantissa reports whether a float literal has a non-zero digit
// before its exponent (so a zero result means underflow).
func nonZeroMantissa(t string) bool {
	t = strings.TrimLeft(t, "+-")
	digits, expMark := "123456789", "eE"
	if len(t) > 1 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X') {
		t, digits, expMark = t[2:], "123456789abcdefABCDEF", "pP"
	}
	if i := strings.IndexAny(t, expMark); i >= 0 {
		t = t[:i]
	}
	return strings.ContainsAny(t, digits)
}

var (
	nan = func() float64 { var z float64; return z / z }()
	inf = func() float64 { var z float64; return 1 / z }()
)

// cmpFloat orders floats like PostgreSQL: NaN equals NaN and sorts above
// everything, -0 equals 0.
func cmpFloat(a, b float64) int {
	an, bn := a != a, b != b
	switch {
	case an && bn:
		return 0
	case an:
		return 1
	case bn:
		return -1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// parseBool parses PostgreSQL boolean input: any unambiguous prefix of
// true/false/yes/no, on/off, 1/0, case-insensitive, surrounding whitespace.
func parseBool(s string) (bool, error) {
	t := trimPGSpace(s)
	if t != "" {
		prefixOf := func(word string) bool { return len(t) <= len(word) && strings.EqualFold(t, word[:len(t)]) }
		switch t[0] {
		case 't', 'T':
			if prefixOf("true") {
				return true, nil
			}
		case 'f', 'F':
			if prefixOf("false") {
				return false, nil
			}
		case 'y', 'Y':
			if prefixOf("yes") {
				return true, nil
			}
		case 'n', 'N':
			if prefixOf("no") {
				return false, nil
			}
		case 'o', 'O':
			if len(t) >= 2 && prefixOf("on") {
				return true, nil
			}
			if len(t) >= 2 && prefixOf("off") {
				return false, nil
			}
		case '1':
			if len(t) == 1 {
				return true, nil
			}
		case '0':
			if len(t) == 1 {
				return false, nil
			}
		}
	}
	return false, syntaxErr("boolean", s)
}

var boolType = &scalar[bool]{
	name:  "boolean",
	parse: parseBool,
	cmp: func(a, b bool) int {
		return cmp.Compare(boolToInt(a), boolToInt(b))
	},
	ordered: true,
}

// ---- uuid, bytea ----

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// parseUUID parses PostgreSQL uuid input: 32 hex digits, optionally in
// braces, with an optional '-' after any group of four digits.
func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	t := s
	braces := len(t) > 0 && t[0] == '{'
	if braces {
		t = t[1:]
	}
	for i := range u {
		if len(t) < 2 {
			return u, syntaxErr("uuid", s)
		}
		hi, ok1 := unhex(t[0])
		lo, ok2 := unhex(t[1])
		if !ok1 || !ok2 {
			return u, syntaxErr("uuid", s)
		}
		u[i] = hi<<4 | lo
		t = t[2:]
		if len(t) > 0 && t[0] == '-' && i%2 == 1 && i < len(u)-1 {
			t = t[1:]
		}
	}
	if braces {
		if len(t) == 0 || t[0] != '}' {
			return u, syntaxErr("uuid", s)
		}
		t = t[1:]
	}
	if t != "" {
		return u, syntaxErr("uuid", s)
	}
	return u, nil
}

var uuidType = &scalar[[16]byte]{
	name:    "uuid",
	parse:   parseUUID,
	cmp:     func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) },
	ordered: true,
}

// parseBytea parses PostgreSQL bytea input: hex format `\x…` (whitespace
// allowed between digit pairs) or the escape format (`\\` and `\ooo`).
func parseBytea(s string) (string, error) {
	if strings.HasPrefix(s, `\x`) {
		out := make([]byte, 0, (len(s)-2)/2)
		for i := 2; i < len(s); {
			c := s[i]
			if c == ' ' || c == '\n' || c == '\t' || c == '\r' {
				i++
				continue
			}
			hi, ok := unhex(c)
			if !ok {
				return "", &Error{Msg: `invalid hexadecimal digit: "` + s[i:i+1] + `"`}
			}
			if i+1 == len(s) {
				return "", &Error{Msg: "invalid hexadecimal data: odd number of digits"}
			}
			lo, ok := unhex(s[i+1])
			if !ok {
				return "", &Error{Msg: `invalid hexadecimal digit: "` + s[i+1:i+2] + `"`}
			}
			out = append(out, hi<<4|lo)
			i += 2
		}
		return string(out), nil
	}
	if strings.IndexByte(s, '\\') < 0 {
		return s, nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			out = append(out, '\\')
			i++
		case i+3 < len(s) && s[i+1] >= '0' && s[i+1] <= '3' &&
			s[i+2] >= '0' && s[i+2] <= '7' && s[i+3] >= '0' && s[i+3] <= '7':
			out = append(out, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
			i += 3
		default:
			return "", &Error{Msg: "invalid input syntax for type bytea"}
		}
	}
	return string(out), nil
}

var byteaType = &scalar[string]{name: "bytea", parse: parseBytea, cmp: strings.Compare, ordered: true}

// ---- text-like ----

func identity(s string) (string, error) { return s, nil }

func textType(name string, norm func(string) string) *scalar[string] {
	parse := identity
	if norm != nil {
		parse = func(s string) (string, error) { return norm(s), nil }
	}
	return &scalar[string]{name: name, parse: parse, cmp: strings.Compare, ordered: true}
}

func trimTrailingSpaces(s string) string { return strings.TrimRight(s, " ") }

// ---- json ----

// canonicalJSON parses JSON text (jsonb input rules) into a form that is
// equal for equal jsonb values: sorted keys, last duplicate key wins, numbers
// compared as numerics.
func canonicalJSON(s string) (string, error) {
	bad := func() (string, error) { return "", &Error{Msg: "invalid input syntax for type json"} }
	if strings.Contains(s, `\u0000`) {
		return "", &Error{Msg: "unsupported Unicode escape sequence"}
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return bad()
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad()
	}
	v, err := normalizeJSON(v)
	if err != nil {
		return "", err
	}
	out, err := json.Marshal(v)
	if err != nil {
		return bad()
	}
	return string(out), nil
}

func normalizeJSON(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		n, err := parseNumeric(string(x))
		if err != nil {
			return nil, err
		}
		return json.Number(n.canonical()), nil
	case []any:
		for i := range x {
			e, err := normalizeJSON(x[i])
			if err != nil {
				return nil, err
			}
			x[i] = e
		}
	case map[string]any:
		for k, e := range x {
			e, err := normalizeJSON(e)
			if err != nil {
				return nil, err
			}
			x[k] = e
		}
	}
	return v, nil
}

func equalOnly(a, b string) int {
	if a == b {
		return 0
	}
	return 1
}

var jsonbType = &scalar[string]{name: "jsonb", parse: canonicalJSON, cmp: equalOnly}

// ---- registry ----

var (
	int2Type        = intType("smallint", 16)
	int4Type        = intType("integer", 32)
	int8Type        = intType("bigint", 64)
	float4Type      = floatType("real", 32)
	float8Type      = floatType("double precision", 64)
	numericType     = &scalar[numVal]{name: "numeric", parse: parseNumeric, cmp: cmpNumeric, ordered: true}
	textT           = textType("text", nil)
	varcharType     = textType("character varying", nil)
	nameType        = textType("name", nil)
	bpcharType      = textType("character", trimTrailingSpaces)
	citextType      = textType("citext", strings.ToLower)
	timestampType   = &scalar[int64]{name: "timestamp without time zone", parse: parseTimestamp, cmp: cmp.Compare[int64], ordered: true}
	timestamptzType = &scalar[int64]{name: "timestamp with time zone", parse: parseTimestamptz, cmp: cmp.Compare[int64], ordered: true}
	dateType        = &scalar[int64]{name: "date", parse: parseDate, cmp: cmp.Compare[int64], ordered: true}
	timeType        = &scalar[int64]{name: "time without time zone", parse: parseTime, cmp: cmp.Compare[int64], ordered: true}
	timetzType      = &scalar[timetz]{name: "time with time zone", parse: parseTimetz, cmp: cmpTimetz, ordered: true}
)

// textLike reports the text-like types that like/ilike/match/imatch accept.
func textLike(typname string) bool {
	switch typname {
	case "text", "varchar", "bpchar", "name", "citext":
		return true
	}
	return false
}

// typeFor returns the comparison behaviour of a pg_type.typname.
func typeFor(typname string) colType {
	switch typname {
	case "int2":
		return int2Type
	case "int4":
		return int4Type
	case "int8":
		return int8Type
	case "float4":
		return float4Type
	case "float8":
		return float8Type
	case "numeric":
		return numericType
	case "bool":
		return boolType
	case "text":
		return textT
	case "varchar":
		return varcharType
	case "name":
		return nameType
	case "bpchar":
		return bpcharType
	case "citext":
		return citextType
	case "uuid":
		return uuidType
	case "bytea":
		return byteaType
	case "jsonb":
		return jsonbType
	case "json":
		return noEquality{name: "json"}
	case "xml", "point", "line", "path", "polygon":
		return noEquality{name: typname}
	case "timestamp":
		return timestampType
	case "timestamptz":
		return timestamptzType
	case "date":
		return dateType
	case "time":
		return timeType
	case "timetz":
		return timetzType
	}
	if len(typname) > 1 && typname[0] == '_' {
		return arrayTypeFor(typname[1:])
	}
	// interval, enums, inet, money, domains, …: text equality only.
	return &scalar[string]{name: typname, parse: identity, cmp: equalOnly}
}

// arrayTypeFor returns the array type whose elements have typname elem.
func arrayTypeFor(elem string) colType {
	switch e := typeFor(elem).(type) {
	case *scalar[int64]:
		return arrayOf(e, false)
	case *scalar[float64]:
		return arrayOf(e, false)
	case *scalar[numVal]:
		return arrayOf(e, false)
	case *scalar[bool]:
		return arrayOf(e, false)
	case *scalar[[16]byte]:
		return arrayOf(e, false)
	case *scalar[timetz]:
		return arrayOf(e, false)
	case *scalar[string]:
		return arrayOf(e, elem == "jsonb")
	default:
		return noEquality{name: elem + "[]"}
	}
}
