package filter

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/openrealtime/realtime/internal/pgtext"
)

// MaxInValues is the largest number of elements an `in` list may have.
const MaxInValues = 100

// MaxValueBytes is the longest filter value (each `in` element), in bytes
// once decoded, so that a filter's canonical text reads back. It bounds the work of one condition on one row
// (docs/protocol.md §4.7); the real server has no such limit.
const MaxValueBytes = 4096

// MaxConditions is the largest number of conditions one filter may AND.
const MaxConditions = 100

// parsePrefix starts every Parse error, as in the real server.
const parsePrefix = "Error parsing `filter` params: "

// Error is a filter error whose Error() is exactly the text to show the
// client (see the package documentation for which texts Parse and Compile
// produce). Parse and Compile always return errors of type *Error.
type Error struct {
	Msg string // the client-facing text
}

// Error returns the client-facing text.
func (e *Error) Error() string { return e.Msg }

func parseErr(msg string) error { return &Error{Msg: parsePrefix + msg} }

// Condition is one parsed `column=[not.]op.value` condition.
type Condition struct {
	Column string // taken verbatim (not trimmed, not unquoted)
	Op     Op
	Negate bool // the `not.` prefix
	// Value is the operand. For non-`in` operators it is the unquoted value.
	// For `in` it is the PostgreSQL array literal the real server stores,
	// "{a,b,c}" for the input "(a,b,c)"; evaluation uses List instead.
	Value string
	// List holds the decoded non-NULL elements of an `in` list, in order.
	List []string
	// NullInList reports that the `in` list had at least one unquoted NULL
	// element. A NULL element never equals anything, but it turns a false
	// `in` into unknown, so `not.in.(1,NULL)` never matches (SQL semantics).
	NullInList bool
}

// Parse parses a postgres_changes filter string into its ANDed conditions,
// following the real server's grammar (docs/protocol.md §4.7):
//
//   - the whole string is trimmed; an empty string gives nil, nil;
//   - conditions are split on commas at parenthesis depth 0 and outside
//     double quotes (a quote opens only right after '.', '(' or ','), and
//     each is trimmed; an empty condition is an error;
//   - a condition is split at its first '=', an optional "not." prefix sets
//     Negate, and the rest is split at its first '.' into operator and value;
//   - a non-`in` value starting with '"' is unquoted (backslash escapes the
//     next byte); a malformed quoted value is kept as written;
//   - an `in` value must be "(…)"; the real server turns it into the array
//     literal "{…}", which is read with PostgreSQL array literal rules
//     (internal/pgtext: double quotes, backslash escapes, unquoted NULL is
//     SQL NULL, surrounding whitespace ignored); nested arrays are rejected, and
//     at most MaxInValues elements (NULLs included) are allowed;
//   - a value (each `in` element) longer than MaxValueBytes, or more than
//     MaxConditions conditions, is refused (a limit of this service).
//
// Errors are *Error values with the real server's texts, for example
// "Error parsing `filter` params: [\"foo\", \"hey\"]". Parse does not know
// column types: call Compile to type-check. It is safe for concurrent use.
func Parse(s string) ([]Condition, error) {
	t := elixirTrim(s)
	if t == "" {
		return nil, nil
	}
	segs := splitTopLevel(t)
	if len(segs) > MaxConditions {
		return nil, parseErr(tooManyConditions)
	}
	conds := make([]Condition, 0, len(segs))
	for _, seg := range segs {
		c, err := parseSegment(seg)
		if err != nil {
			return nil, err
		}
		conds = append(conds, c)
	}
	return conds, nil
}

// splitTopLevel splits s on commas that are at parenthesis depth 0 and
// outside double quotes. Like the real server it works byte by byte, opens a
// quote only when the previous byte is '.', '(' or ',' (never at the start of
// a condition) and lets a backslash inside quotes escape the next byte.
func splitTopLevel(s string) []string {
	var segs []string
	depth, start := 0, 0
	quoted := false
	var prev byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if quoted {
			switch {
			case c == '\\' && i+1 < len(s):
				i++
				prev = s[i]
			case c == '"':
				quoted = false
				prev = c
			default:
				prev = c
			}
			continue
		}
		switch {
		case c == '"' && (prev == '.' || prev == '(' || prev == ','):
			quoted = true
			prev = c
		case c == '(':
			depth++
			prev = c
		case c == ')':
			depth = max(0, depth-1)
			prev = c
		case c == ',' && depth == 0:
			segs = append(segs, s[start:i])
			start = i + 1
			prev = 0
		default:
			prev = c
		}
	}
	return append(segs, s[start:])
}

func parseSegment(seg string) (Condition, error) {
	t := elixirTrim(seg)
	if t == "" {
		return Condition{}, parseErr("filter must not contain empty segments (check for extra commas)")
	}
	col, rest, ok := strings.Cut(t, "=")
	if !ok {
		return Condition{}, parseErr(elixirInspectList(t))
	}
	c := Condition{Column: col}
	if r, ok := strings.CutPrefix(rest, "not."); ok {
		c.Negate = true
		rest = r
	}
	opName, value, ok := strings.Cut(rest, ".")
	if !ok {
		return Condition{}, parseErr(elixirInspectList(rest))
	}
	op, ok := opByName(opName)
	if !ok {
		return Condition{}, parseErr(elixirInspectList(opName, value))
	}
	c.Op = op
	if op != OpIn {
		// A quoted value decodes to at least half its length: longer
		// ones are refused before decoding.
		if len(value) > 2*MaxValueBytes+2 {
			return Condition{}, parseErr(valueTooLong)
		}
		c.Value = unquoteValue(value)
		if len(c.Value) > MaxValueBytes {
			return Condition{}, parseErr(valueTooLong)
		}
		return c, nil
	}
	if len(value) < 2 || value[0] != '(' || value[len(value)-1] != ')' {
		return Condition{}, parseErr("`in` filter value must be wrapped by parentheses")
	}
	c.Value = "{" + value[1:len(value)-1] + "}"
	list, hasNull, n, err := parseArrayLiteral(c.Value)
	if err != nil {
		return Condition{}, parseErr(err.Error())
	}
	if n > MaxInValues {
		return Condition{}, parseErr(tooManyValues)
	}
	for _, el := range list {
		if len(el) > MaxValueBytes {
			return Condition{}, parseErr(valueTooLong)
		}
	}
	c.List, c.NullInList = list, hasNull
	return c, nil
}

const (
	tooManyValues     = "too many values for `in` filter. Maximum 100"
	valueTooLong      = "filter value too long. Maximum 4096 bytes"
	tooManyConditions = "too many conditions in filter. Maximum 100"
)

// unquoteValue strips one level of double quotes from a value that starts
// with '"' and ends with the matching unescaped '"'; inside, a backslash makes
// the next byte literal. Anything else is returned unchanged.
func unquoteValue(v string) string {
	if len(v) == 0 || v[0] != '"' {
		return v
	}
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			if i == len(v)-1 {
				return b.String()
			}
			return v
		case c == '\\' && i+1 < len(v):
			i++
			b.WriteByte(v[i])
		default:
			b.WriteByte(c)
		}
	}
	return v // no closing quote
}

// parseArrayLiteral decodes the one-dimensional PostgreSQL array literal
// "{…}" an `in` list stands for, with pgtext.ParseArray (array_in rules).
// It returns the non-NULL elements, whether any element was NULL, and the
// total element count. A nested or malformed literal is an *Error.
func parseArrayLiteral(lit string) (list []string, hasNull bool, n int, err error) {
	a, err := pgtext.ParseArray(lit, ',')
	if err != nil || len(a.Dims) > 1 {
		return nil, false, 0, &Error{Msg: `malformed array literal: "` + lit + `"`}
	}
	for i, el := range a.Elems {
		if a.IsNull(i) {
			hasNull = true
		} else {
			list = append(list, el)
		}
	}
	return list, hasNull, len(a.Elems), nil
}

// elixirSpace reports whether r is whitespace for Elixir's String.trim:
// Unicode White_Space without the non-breaking spaces.
func elixirSpace(r rune) bool {
	switch {
	case r >= 0x09 && r <= 0x0D, r == ' ', r == 0x85, r == 0x1680,
		r >= 0x2000 && r <= 0x2006, r >= 0x2008 && r <= 0x200A,
		r == 0x2028, r == 0x2029, r == 0x205F, r == 0x3000:
		return true
	}
	return false
}

// elixirTrim trims leading and trailing whitespace like Elixir's String.trim.
func elixirTrim(s string) string {
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError || !elixirSpace(r) {
			break
		}
		s = s[n:]
	}
	for len(s) > 0 {
		r, n := utf8.DecodeLastRuneInString(s)
		if r == utf8.RuneError || !elixirSpace(r) {
			break
		}
		s = s[:len(s)-n]
	}
	return s
}

// Elixir's Kernel.inspect defaults that shape the rendering of a list.
const (
	inspectWidth          = 80
	inspectLimit          = 50
	inspectPrintableLimit = 4096
)

// elixirInspectList renders a list of strings the way Elixir's inspect/1
// does with default options, e.g. ["foo", "hey"]: printable strings are
// quoted and escaped, others shown as <<bytes>>, and a list wider than 80
// columns breaks between elements (flex breaks, one-space indent).
func elixirInspectList(items ...string) string {
	parts := make([]string, len(items))
	flat := 1 // "["
	for i, s := range items {
		parts[i] = elixirInspectString(s)
		flat += len(parts[i])
		if i > 0 {
			flat += 2 // ", "
		}
	}
	flat++ // "]"
	var b strings.Builder
	b.WriteByte('[')
	col := 1
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(',')
			col++
			tail := 1 // the following "," or "]"
			if flat <= inspectWidth || col+1+len(p)+tail <= inspectWidth {
				b.WriteByte(' ')
				col++
			} else {
				b.WriteString("\n ")
				col = 1
			}
		}
		b.WriteString(p)
		col += len(p)
	}
	b.WriteByte(']')
	return b.String()
}

// elixirInspectString renders one binary like Elixir's inspect/1.
func elixirInspectString(s string) string {
	if !elixirPrintable(s) {
		var b strings.Builder
		b.WriteString("<<")
		for i := 0; i < len(s); i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			if i == inspectLimit {
				b.WriteString("...")
				break
			}
			b.WriteString(strconv.Itoa(int(s[i])))
		}
		b.WriteString(">>")
		return b.String()
	}
	var b strings.Builder
	b.WriteByte('"')
	count := 0
	for i := 0; i < len(s); {
		if count == inspectPrintableLimit {
			b.WriteString(`" <> ...`)
			return b.String()
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '#':
			if i+1 < len(s) && s[i+1] == '{' {
				b.WriteString(`\#`)
			} else {
				b.WriteByte('#')
			}
		case '\a':
			b.WriteString(`\a`)
		case '\b':
			b.WriteString(`\b`)
		case 0x7F:
			b.WriteString(`\d`)
		case 0x1B:
			b.WriteString(`\e`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\v':
			b.WriteString(`\v`)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
		count++
	}
	b.WriteByte('"')
	return b.String()
}

// elixirPrintable mirrors String.printable?/2 with the inspect limit: valid
// UTF-8 whose first 4096 code points are printable or escapable.
func elixirPrintable(s string) bool {
	count := 0
	for i := 0; i < len(s) && count < inspectPrintableLimit; count++ {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			return false
		}
		switch {
		case r >= 0x20 && r <= 0x7E, r >= 0xA0 && r <= 0xD7FF,
			r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		case r == '\n', r == '\r', r == '\t', r == '\v', r == '\b',
			r == '\f', r == 0x1B, r == 0x7F, r == '\a':
		default:
			return false
		}
		i += n
	}
	return true
}
