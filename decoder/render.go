package decoder

import (
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/openrealtime/realtime/internal/jsonw"
	"github.com/openrealtime/realtime/internal/pgtext"
)

// Render returns the JSON form of a value, given its PostgreSQL text output
// and its type, exactly as the reference server renders it: the result of
// to_jsonb('<text>'::<type>) where <type> is the column type's regtype name
// (docs/protocol.md §4.3). The text must come from a session with
// TimeZone=UTC, DateStyle=ISO, IntervalStyle=postgres, extra_float_digits=1
// and bytea_output=hex (the logical source connects that way).
//
//   - int2/int4/int8, numeric, float4/float8: JSON numbers, written as
//     PostgreSQL's numeric would (exponents expanded, "-0" as 0);
//     NaN and ±Infinity become strings.
//   - bool: true/false. jsonb: the value verbatim (its text output is
//     already normalized). json: normalized as the cast to jsonb does it
//     (duplicate keys keep the last value, keys in jsonb order, numbers
//     and string escapes rewritten), without whitespace.
//   - timestamp: "2024-05-01T12:00:00.5"; timestamptz:
//     "2024-05-01T10:00:00+00:00" (zone always with minutes).
//   - bpchar and bit: only the first character survives, because the
//     reference server casts to bare "character"/"bit", which means length 1.
//     This applies to the column type itself and to arrays of it, not to
//     domains over it or attributes of composites.
//   - arrays (up to 6 dimensions, bounds decoration ignored): JSON arrays,
//     NULL elements as null, elements rendered by the element type. Array
//     text that is not rectangular or that array_out would not print
//     (`{a"b"}`, `{{}}`) is malformed.
//   - composites: JSON objects keyed by attribute name when t.Attrs is
//     known, else a string.
//   - domains: rendered as their base type.
//   - everything else (text, uuid, enums, date, time, timetz, interval,
//     bytea, money, ranges, inet, ...): the text as a JSON string.
//
// A nil t renders the text as a string; text that does not parse as its
// type claims (a malformed array literal, say) is rendered as a string too.
// The result is always valid JSON. Render is safe for concurrent use.
func Render(text string, t *TypeInfo) []byte {
	return AppendRender(make([]byte, 0, len(text)+2), text, t)
}

// AppendRender appends the rendering of Render to dst and returns the
// extended slice.
func AppendRender(dst []byte, text string, t *TypeInfo) []byte {
	return appendValue(dst, text, t, t != nil && hasFirstCharQuirk(t.OID), 0)
}

// hasFirstCharQuirk reports the column types whose regtype name, used as a
// cast target by the reference server, implies length 1.
func hasFirstCharQuirk(oid uint32) bool {
	switch oid {
	case oidBPChar, oidBPCharArray, oidBit, oidBitArray:
		return true
	}
	return false
}

func appendValue(dst []byte, text string, t *TypeInfo, quirk bool, depth int) []byte {
	for t != nil && t.Kind == 'd' && t.Base != nil && depth < maxTypeDepth {
		t = t.Base
		depth++
	}
	if t == nil || depth >= maxTypeDepth {
		return appendJSONString(dst, text)
	}
	switch t.OID {
	case oidInt2, oidInt4, oidInt8, oidNumeric, oidFloat4, oidFloat8:
		if out, ok := appendNumber(dst, text); ok {
			return out
		}
		return appendJSONString(dst, text)
	case oidBool:
		switch text {
		case "t", "true":
			return append(dst, "true"...)
		case "f", "false":
			return append(dst, "false"...)
		}
		return appendJSONString(dst, text)
	case oidJSON:
		if out, err := appendJSONAsJSONB(dst, text); err == nil {
			return out
		}
		return appendJSONString(dst, text)
	case oidJSONB:
		if json.Valid([]byte(text)) {
			return append(dst, text...)
		}
		return appendJSONString(dst, text)
	case oidTimestamp:
		return appendJSONString(dst, isoTimestamp(text, false))
	case oidTimestamptz:
		return appendJSONString(dst, isoTimestamp(text, true))
	case oidBPChar, oidBit:
		if quirk {
			return appendJSONString(dst, firstChar(text))
		}
		return appendJSONString(dst, text)
	case oidInt2Vector, oidOIDVector:
		return appendVector(dst, text, t, depth)
	}
	if t.Elem != nil {
		a, err := pgtext.ParseArray(text, t.Delim)
		if err != nil {
			return appendJSONString(dst, text)
		}
		k := 0
		return appendArrayLevel(dst, &a, 0, &k, t.Elem, quirk, depth+1)
	}
	if t.Kind == 'c' && t.Attrs != nil {
		fields, err := pgtext.ParseRecord(text)
		if err != nil {
			return appendJSONString(dst, text)
		}
		if len(t.Attrs) == 0 && len(fields) == 1 && fields[0].Null {
			fields = nil // "()" is the text of a composite without attributes
		}
		if len(fields) != len(t.Attrs) {
			return appendJSONString(dst, text)
		}
		dst = append(dst, '{')
		for i, a := range t.Attrs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, a.Name)
			dst = append(dst, ':')
			if fields[i].Null {
				dst = append(dst, "null"...)
			} else {
				dst = appendValue(dst, fields[i].Text, a.Type, false, depth+1)
			}
		}
		return append(dst, '}')
	}
	return appendJSONString(dst, text)
}

// firstChar returns the first character of s (a whole UTF-8 sequence).
func firstChar(s string) string {
	if s == "" {
		return s
	}
	_, n := utf8.DecodeRuneInString(s)
	return s[:n]
}

// appendVector renders int2vector/oidvector, whose text is space-separated.
func appendVector(dst []byte, text string, t *TypeInfo, depth int) []byte {
	dst = append(dst, '[')
	for i, f := range strings.Fields(text) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendValue(dst, f, t.Elem, false, depth+1)
	}
	return append(dst, ']')
}

// appendArrayLevel renders dimension dim of a (all of a when dim is 0)
// as a JSON array; *k is the index of the next element to render.
func appendArrayLevel(dst []byte, a *pgtext.Array, dim int, k *int, elem *TypeInfo, quirk bool, depth int) []byte {
	dst = append(dst, '[')
	if dim < len(a.Dims) {
		for i := range a.Dims[dim] {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dim+1 < len(a.Dims) {
				dst = appendArrayLevel(dst, a, dim+1, k, elem, quirk, depth)
				continue
			}
			if a.IsNull(*k) {
				dst = append(dst, "null"...)
			} else {
				dst = appendValue(dst, a.Elems[*k], elem, quirk, depth)
			}
			*k++
		}
	}
	return append(dst, ']')
}

// isoTimestamp turns ISO DateStyle output into the XSD form to_jsonb uses:
// "T" between date and time, and for timestamptz a zone of at least
// "+HH:MM". "infinity" and BC suffixes pass through.
func isoTimestamp(text string, tz bool) string {
	i := strings.IndexByte(text, ' ')
	if i <= 0 || !strings.Contains(text[:i], "-") {
		return text // infinity, -infinity
	}
	rest := text[i+1:]
	suffix := ""
	if j := strings.IndexByte(rest, ' '); j >= 0 {
		rest, suffix = rest[:j], rest[j:] // " BC"
	}
	if tz {
		if j := strings.IndexAny(rest, "+-"); j >= 0 && len(rest)-j == 3 {
			rest += ":00"
		}
	}
	return text[:i] + "T" + rest + suffix
}

// appendNumber appends s as PostgreSQL's jsonb prints a number read from s:
// s must be a JSON number; exponents are expanded the way numeric_in and
// numeric_out do ("1.5e-07" -> 0.00000015, "1e+20" ->
// 100000000000000000000) and a negative zero loses its sign. It reports
// false, leaving dst unchanged, when s is not a JSON number (NaN, Infinity)
// or its exponent is absurd.
func appendNumber(dst []byte, s string) ([]byte, bool) {
	if !validJSONNumber(s) {
		return dst, false
	}
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		e := s[i+1:]
		eneg := false
		if e[0] == '+' || e[0] == '-' {
			eneg = e[0] == '-'
			e = e[1:]
		}
		for _, c := range []byte(e) {
			exp = exp*10 + int(c-'0')
			if exp > 1000 {
				return dst, false
			}
		}
		if eneg {
			exp = -exp
		}
	}
	intPart, frac := mant, ""
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		intPart, frac = mant[:i], mant[i+1:]
	}
	digits := intPart + frac
	nonzero := strings.Trim(digits, "0") != ""
	if exp == 0 {
		if neg && nonzero {
			dst = append(dst, '-')
		}
		return append(dst, mant...), true
	}
	point := len(intPart) + exp // decimal point position within digits
	var ip, fp string
	switch {
	case point <= 0:
		fp = strings.Repeat("0", -point) + digits
	case point >= len(digits):
		ip = digits + strings.Repeat("0", point-len(digits))
	default:
		ip, fp = digits[:point], digits[point:]
	}
	ip = strings.TrimLeft(ip, "0")
	if ip == "" {
		ip = "0"
	}
	if neg && nonzero {
		dst = append(dst, '-')
	}
	dst = append(dst, ip...)
	if fp != "" {
		dst = append(dst, '.')
		dst = append(dst, fp...)
	}
	return dst, true
}

// validJSONNumber reports whether s is exactly one JSON number.
func validJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(s)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// appendJSONString appends s as a JSON string. Like jsonb it escapes only
// '"', '\\' and control characters; invalid UTF-8 becomes U+FFFD.
func appendJSONString(dst []byte, s string) []byte { return jsonw.AppendString(dst, s) }

// appendJSONAsJSONB appends a json value the way PostgreSQL prints it after
// converting it to jsonb, minus whitespace: object keys deduplicated (the
// last one wins) and ordered as jsonb orders them (shorter first, then
// bytewise), numbers as numeric prints them, strings re-escaped. It fails,
// leaving dst unchanged, on invalid JSON.
func appendJSONAsJSONB(dst []byte, text string) ([]byte, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	out, err := appendJSONBValue(dst, dec)
	if err != nil {
		return dst, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return dst, errors.New("decoder: trailing data after json value")
	}
	return out, nil
}

func appendJSONBValue(dst []byte, dec *json.Decoder) ([]byte, error) {
	tok, err := dec.Token()
	if err != nil {
		return dst, err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '[':
			dst = append(dst, '[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					dst = append(dst, ',')
				}
				if dst, err = appendJSONBValue(dst, dec); err != nil {
					return dst, err
				}
			}
			if _, err := dec.Token(); err != nil {
				return dst, err
			}
			return append(dst, ']'), nil
		case '{':
			type member struct {
				key string
				val []byte
			}
			var members []member
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return dst, err
				}
				k, ok := kt.(string)
				if !ok {
					return dst, errors.New("decoder: json object key is not a string")
				}
				val, err := appendJSONBValue(nil, dec)
				if err != nil {
					return dst, err
				}
				if i := slices.IndexFunc(members, func(m member) bool { return m.key == k }); i >= 0 {
					members[i].val = val
				} else {
					members = append(members, member{k, val})
				}
			}
			if _, err := dec.Token(); err != nil {
				return dst, err
			}
			slices.SortFunc(members, func(a, b member) int {
				if len(a.key) != len(b.key) {
					return len(a.key) - len(b.key)
				}
				return strings.Compare(a.key, b.key)
			})
			dst = append(dst, '{')
			for i, m := range members {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = appendJSONString(dst, m.key)
				dst = append(dst, ':')
				dst = append(dst, m.val...)
			}
			return append(dst, '}'), nil
		}
		return dst, errors.New("decoder: unexpected json delimiter")
	case string:
		return appendJSONString(dst, v), nil
	case json.Number:
		out, ok := appendNumber(dst, string(v))
		if !ok {
			return dst, errors.New("decoder: json number out of range")
		}
		return out, nil
	case bool:
		if v {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case nil:
		return append(dst, "null"...), nil
	}
	return dst, errors.New("decoder: unexpected json token")
}
