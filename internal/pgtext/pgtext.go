package pgtext

import (
	"errors"
	"fmt"
	"strings"
)

// MaxArrayDepth is the deepest array nesting [ParseArray] accepts:
// PostgreSQL's MAXDIM, so every array the server can print parses.
const MaxArrayDepth = 6

// ErrSyntax is matched (errors.Is) by every error of [ParseArray] and
// [ParseRecord]: the text is not a well-formed literal.
var ErrSyntax = errors.New("pgtext: malformed literal")

// Array is an array literal split into elements.
type Array struct {
	// Dims holds the length of each dimension, outermost first. It is nil
	// for an empty array ("{}").
	Dims []int
	// Elems holds the element texts in row-major order, de-quoted and
	// unescaped; a NULL element's text is "".
	Elems []string
	// Nulls[i] reports whether element i is NULL. Nulls is nil when no
	// element is NULL.
	Nulls []bool
}

// IsNull reports whether element i is NULL.
func (a *Array) IsNull(i int) bool { return a.Nulls != nil && a.Nulls[i] }

// isSpace reports the bytes PostgreSQL's array and record input functions
// skip as whitespace (the C locale's isspace).
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// trimSpace returns s without leading and trailing isSpace bytes.
func trimSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// ParseArray splits an array literal in PostgreSQL text format (see the
// package documentation for the grammar). delim separates elements: the
// element type's typdelim, ',' for all types but box (';'); zero means ','.
// An optional dimension decoration "[lo:hi][lo:hi]=" is checked for form
// and otherwise ignored, and so are whitespace around the literal. Errors
// match [ErrSyntax].
func ParseArray(s string, delim byte) (Array, error) {
	if delim == 0 {
		delim = ','
	}
	t := trimSpace(s)
	if strings.HasPrefix(t, "[") {
		rest, ok := skipBounds(t)
		if !ok {
			return Array{}, fmt.Errorf("pgtext: array dimension decoration: %w", ErrSyntax)
		}
		t = rest
	}
	p := arrayParser{t: t, delim: delim}
	if !p.level(0) {
		return Array{}, fmt.Errorf("pgtext: array literal at byte %d: %w", p.i, ErrSyntax)
	}
	for p.i < len(t) && isSpace(t[p.i]) {
		p.i++
	}
	if p.i != len(t) {
		return Array{}, fmt.Errorf("pgtext: trailing text after array literal at byte %d: %w", p.i, ErrSyntax)
	}
	return p.out, nil
}

// skipBounds skips a "[lo:hi][lo:hi]=" dimension decoration.
func skipBounds(t string) (string, bool) {
	i := 0
	for i < len(t) && t[i] == '[' {
		j := strings.IndexByte(t[i:], ']')
		if j < 0 {
			return "", false
		}
		lo, hi, ok := strings.Cut(t[i+1:i+j], ":")
		if !ok || !signedDigits(lo) || !signedDigits(hi) {
			return "", false
		}
		i += j + 1
	}
	if i == 0 || i >= len(t) || t[i] != '=' {
		return "", false
	}
	return t[i+1:], true
}

// signedDigits reports whether s is one or more decimal digits with an
// optional leading '-'.
func signedDigits(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// arrayParser holds the state of one ParseArray call.
type arrayParser struct {
	t     string
	i     int // next byte of t to read
	delim byte
	out   Array
	// levels[d] is the entry count of every level at depth d (0 = none
	// seen yet); all levels at one depth must agree.
	levels [MaxArrayDepth]int
	leaf   int // 1 + depth of the elements (0 = none seen yet)
	b      strings.Builder
}

func (p *arrayParser) skipSpace() {
	for p.i < len(p.t) && isSpace(p.t[p.i]) {
		p.i++
	}
}

// leafAt notes an element at depth; all elements must share a depth.
func (p *arrayParser) leafAt(depth int) bool {
	if p.leaf == 0 {
		p.leaf = depth + 1
	}
	return p.leaf == depth+1
}

func (p *arrayParser) add(s string, null bool) {
	if null {
		s = ""
	}
	if null && p.out.Nulls == nil {
		p.out.Nulls = make([]bool, len(p.out.Elems), len(p.out.Elems)+1)
	}
	p.out.Elems = append(p.out.Elems, s)
	if p.out.Nulls != nil {
		p.out.Nulls = append(p.out.Nulls, null)
	}
}

// level reads one "{…}" level at depth and reports whether it is
// well-formed.
func (p *arrayParser) level(depth int) bool {
	p.skipSpace()
	if p.i >= len(p.t) || p.t[p.i] != '{' || depth >= MaxArrayDepth {
		return false
	}
	p.i++
	count := 0
	for {
		p.skipSpace()
		if p.i >= len(p.t) {
			return false
		}
		if p.t[p.i] == '}' && count == 0 {
			p.i++
			break
		}
		switch c := p.t[p.i]; {
		case c == '{':
			if !p.level(depth + 1) {
				return false
			}
		case c == '"':
			if !p.leafAt(depth) || !p.quoted() {
				return false
			}
		case c == p.delim || c == '}':
			return false
		default:
			if !p.leafAt(depth) || !p.unquoted() {
				return false
			}
		}
		count++
		p.skipSpace()
		if p.i >= len(p.t) {
			return false
		}
		if p.t[p.i] == '}' {
			p.i++
			break
		}
		if p.t[p.i] != p.delim {
			return false
		}
		p.i++
	}
	return p.endLevel(depth, count)
}

// quoted reads a double-quoted element at p.i.
func (p *arrayParser) quoted() bool {
	p.i++
	p.b.Reset()
	for p.i < len(p.t) {
		switch c := p.t[p.i]; c {
		case '\\':
			if p.i+1 == len(p.t) {
				return false
			}
			p.b.WriteByte(p.t[p.i+1])
			p.i += 2
		case '"':
			p.i++
			p.add(p.b.String(), false)
			return true
		default:
			p.b.WriteByte(c)
			p.i++
		}
	}
	return false
}

// unquoted reads an unquoted element at p.i, up to the delimiter or '}'.
// Trailing unescaped whitespace is dropped; an unescaped NULL is NULL.
func (p *arrayParser) unquoted() bool {
	p.b.Reset()
	escaped := false
	keep := 0 // length of b up to its last escaped or non-space byte
	for p.i < len(p.t) {
		switch c := p.t[p.i]; {
		case c == p.delim || c == '}':
			el := p.b.String()[:keep]
			p.add(el, !escaped && strings.EqualFold(el, "NULL"))
			return true
		case c == '\\':
			if p.i+1 == len(p.t) {
				return false
			}
			p.b.WriteByte(p.t[p.i+1])
			p.i += 2
			escaped = true
			keep = p.b.Len()
		case c == '"' || c == '{':
			return false
		default:
			p.b.WriteByte(c)
			p.i++
			if !isSpace(c) {
				keep = p.b.Len()
			}
		}
	}
	return false
}

// endLevel notes that a level at depth has count entries: all levels at
// one depth must agree, and only a whole array may be empty ("{}").
func (p *arrayParser) endLevel(depth, count int) bool {
	if count == 0 {
		return depth == 0 && len(p.out.Elems) == 0
	}
	if p.levels[depth] == 0 {
		p.levels[depth] = count
	}
	if p.levels[depth] != count {
		return false
	}
	if depth == 0 && p.leaf > 0 {
		p.out.Dims = append([]int(nil), p.levels[:p.leaf]...)
	}
	return true
}

// Field is one field of a record literal.
type Field struct {
	Null bool   // the field is NULL (empty and unquoted)
	Text string // the de-quoted, unescaped text; "" when Null
}

// ParseRecord splits a record (composite) literal as record_out prints it,
// such as `(1,"a,b",,"")`: an empty unquoted field is NULL, "" inside
// quotes is a quote, a backslash makes the next byte literal, and quoted
// and unquoted parts of a field concatenate. Whitespace around the
// parentheses is ignored; whitespace inside a field is kept. "()" is one
// NULL field, since record_out prints a record with no attributes that way
// too; the caller, which knows the attribute count, tells them apart.
// Errors match [ErrSyntax].
func ParseRecord(s string) ([]Field, error) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if i >= len(s) || s[i] != '(' {
		return nil, fmt.Errorf("pgtext: record literal does not start with '(': %w", ErrSyntax)
	}
	i++
	var fields []Field
	var b strings.Builder
	for {
		b.Reset()
		quoted := false
		for i < len(s) && s[i] != ',' && s[i] != ')' {
			switch c := s[i]; c {
			case '\\':
				if i+1 >= len(s) {
					return nil, fmt.Errorf("pgtext: record literal ends in a backslash: %w", ErrSyntax)
				}
				b.WriteByte(s[i+1])
				i += 2
				quoted = true
			case '"':
				quoted = true
				end, ok := recordQuoted(s, i+1, &b)
				if !ok {
					return nil, fmt.Errorf("pgtext: unterminated quote in record literal: %w", ErrSyntax)
				}
				i = end
			default:
				b.WriteByte(c)
				i++
			}
		}
		if i >= len(s) {
			return nil, fmt.Errorf("pgtext: record literal has no closing ')': %w", ErrSyntax)
		}
		if !quoted && b.Len() == 0 {
			fields = append(fields, Field{Null: true})
		} else {
			fields = append(fields, Field{Text: b.String()})
		}
		if s[i] == ')' {
			i++
			break
		}
		i++ // ','
	}
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if i != len(s) {
		return nil, fmt.Errorf("pgtext: trailing text after record literal at byte %d: %w", i, ErrSyntax)
	}
	return fields, nil
}

// recordQuoted reads the inside of a quoted record field starting at s[i]
// into b and returns the index after the closing quote.
func recordQuoted(s string, i int, b *strings.Builder) (int, bool) {
	for i < len(s) {
		switch c := s[i]; c {
		case '\\':
			if i+1 >= len(s) {
				return 0, false
			}
			b.WriteByte(s[i+1])
			i += 2
		case '"':
			if i+1 < len(s) && s[i+1] == '"' {
				b.WriteByte('"')
				i += 2
				continue
			}
			return i + 1, true
		default:
			b.WriteByte(c)
			i++
		}
	}
	return 0, false
}
