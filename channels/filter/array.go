package filter

import (
	"cmp"
	"encoding/json"
	"strings"
)

// arrayVal is a parsed array: its elements in storage order (zero T where
// NULL) and its dimension lengths.
type arrayVal[T any] struct {
	dims  []int
	elems []T
	nulls []bool // nil when no element is NULL
}

func (a arrayVal[T]) isNull(i int) bool { return a.nulls != nil && a.nulls[i] }

// arrayOf builds the array type of an element type. Array values are read in
// PostgreSQL's text form ("{1,2,NULL}", optionally with a "[1:3]=" bounds
// prefix) or as a JSON array ("[1,2,null]", the jsonb rendering); rawJSON
// keeps JSON elements as JSON text (for jsonb elements).
func arrayOf[T any](e *scalar[T], rawJSON bool) *scalar[arrayVal[T]] {
	name := e.name + "[]"
	return &scalar[arrayVal[T]]{
		name: name,
		parse: func(s string) (arrayVal[T], error) {
			raw, err := splitArray(s, rawJSON)
			if err != nil {
				return arrayVal[T]{}, err
			}
			out := arrayVal[T]{dims: raw.dims(), elems: make([]T, len(raw.elems))}
			for i, el := range raw.elems {
				if raw.nulls != nil && raw.nulls[i] {
					continue
				}
				v, err := e.parse(el)
				if err != nil {
					return arrayVal[T]{}, err
				}
				out.elems[i] = v
			}
			out.nulls = raw.nulls
			return out, nil
		},
		cmp: func(a, b arrayVal[T]) int {
			// PostgreSQL array_cmp: element-wise (NULLs equal each other and
			// sort after values), then element count, dimensions, lengths.
			n := min(len(a.elems), len(b.elems))
			for i := range n {
				an, bn := a.isNull(i), b.isNull(i)
				switch {
				case an && bn:
					continue
				case an:
					return 1
				case bn:
					return -1
				}
				if r := e.cmp(a.elems[i], b.elems[i]); r != 0 {
					return r
				}
			}
			if r := cmp.Compare(len(a.elems), len(b.elems)); r != 0 {
				return r
			}
			if r := cmp.Compare(len(a.dims), len(b.dims)); r != 0 {
				return r
			}
			for i := range a.dims {
				if r := cmp.Compare(a.dims[i], b.dims[i]); r != 0 {
					return r
				}
			}
			return 0
		},
		ordered: e.ordered,
		noIn:    true,
	}
}

// maxArrayDepth is PostgreSQL's MAXDIM.
const maxArrayDepth = 6

// rawArray is an array split into element texts.
type rawArray struct {
	levels [maxArrayDepth]int // entries per level at each depth (0 = not seen)
	leaf   int                // 1 + depth of the scalar elements (0 = none yet)
	elems  []string
	nulls  []bool
}

// dims returns the dimension lengths (nil for an empty array).
func (r *rawArray) dims() []int {
	if r.leaf == 0 {
		return nil
	}
	return append([]int(nil), r.levels[:r.leaf]...)
}

// leafAt notes a scalar element at depth; all scalars must share a depth.
func (r *rawArray) leafAt(depth int) bool {
	if r.leaf == 0 {
		r.leaf = depth + 1
	}
	return r.leaf == depth+1
}

func (r *rawArray) add(s string, null bool) {
	if null && r.nulls == nil {
		r.nulls = make([]bool, len(r.elems), len(r.elems)+1)
	}
	r.elems = append(r.elems, s)
	if r.nulls != nil {
		r.nulls = append(r.nulls, null)
	}
}

// splitArray splits an array value in PostgreSQL text form or JSON form.
func splitArray(s string, rawJSON bool) (rawArray, error) {
	malformed := &Error{Msg: `malformed array literal: "` + s + `"`}
	t := trimPGSpace(s)
	if strings.HasPrefix(t, "[") {
		if rest, ok := skipBounds(t); ok {
			t = rest
		} else {
			var r rawArray
			if err := splitJSONArray(t, rawJSON, 0, &r); err != nil {
				return rawArray{}, malformed
			}
			return r, nil
		}
	}
	var r rawArray
	i := 0
	if !splitPGArray(t, &i, 0, &r) {
		return rawArray{}, malformed
	}
	for i < len(t) && arraySpace(t[i]) {
		i++
	}
	if i != len(t) {
		return rawArray{}, malformed
	}
	return r, nil
}

// skipBounds skips a "[lo:hi][lo:hi]=" dimension prefix.
func skipBounds(t string) (string, bool) {
	i := 0
	for i < len(t) && t[i] == '[' {
		j := strings.IndexByte(t[i:], ']')
		if j < 0 {
			return "", false
		}
		inner := t[i+1 : i+j]
		lo, hi, ok := strings.Cut(inner, ":")
		if !ok || !allDigitsSigned(lo) || !allDigitsSigned(hi) {
			return "", false
		}
		i += j + 1
	}
	if i == 0 || i >= len(t) || t[i] != '=' {
		return "", false
	}
	return t[i+1:], true
}

func allDigitsSigned(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// splitPGArray reads one "{…}" level at t[*i] (PostgreSQL 15 array_in rules)
// and records its length in r.levels[depth]; sub-arrays must be rectangular.
func splitPGArray(t string, i *int, depth int, r *rawArray) bool {
	for *i < len(t) && arraySpace(t[*i]) {
		*i++
	}
	if *i >= len(t) || t[*i] != '{' || depth >= maxArrayDepth {
		return false
	}
	*i++
	count := 0
	var b strings.Builder
	for {
		for *i < len(t) && arraySpace(t[*i]) {
			*i++
		}
		if *i >= len(t) {
			return false
		}
		if t[*i] == '}' && count == 0 {
			*i++
			break
		}
		switch c := t[*i]; {
		case c == '{':
			if !splitPGArray(t, i, depth+1, r) {
				return false
			}
		case c == '"':
			if !r.leafAt(depth) {
				return false // scalar where a sub-array is expected
			}
			*i++
			b.Reset()
			closed := false
			for *i < len(t) && !closed {
				switch c := t[*i]; c {
				case '\\':
					if *i+1 == len(t) {
						return false
					}
					b.WriteByte(t[*i+1])
					*i += 2
				case '"':
					closed = true
					*i++
				default:
					b.WriteByte(c)
					*i++
				}
			}
			if !closed {
				return false
			}
			r.add(b.String(), false)
		case c == ',' || c == '}':
			return false
		default:
			if !r.leafAt(depth) {
				return false
			}
			b.Reset()
			escaped := false
			keep := 0
		elem:
			for *i < len(t) {
				switch c := t[*i]; {
				case c == ',' || c == '}':
					break elem
				case c == '\\':
					if *i+1 == len(t) {
						return false
					}
					b.WriteByte(t[*i+1])
					*i += 2
					escaped = true
					keep = b.Len()
				case c == '"' || c == '{':
					return false
				default:
					b.WriteByte(c)
					*i++
					if !arraySpace(c) {
						keep = b.Len()
					}
				}
			}
			el := b.String()[:keep]
			r.add(el, !escaped && strings.EqualFold(el, "NULL"))
		}
		count++
		for *i < len(t) && arraySpace(t[*i]) {
			*i++
		}
		if *i >= len(t) {
			return false
		}
		if t[*i] == '}' {
			*i++
			break
		}
		if t[*i] != ',' {
			return false
		}
		*i++
	}
	return recordDim(r, depth, count)
}

// recordDim notes that a level at depth has count entries; all levels at the
// same depth must agree, and only a whole value may be empty ("{}").
func recordDim(r *rawArray, depth, count int) bool {
	if count == 0 {
		return depth == 0 && len(r.elems) == 0
	}
	if r.levels[depth] == 0 {
		r.levels[depth] = count
	}
	return r.levels[depth] == count
}

// splitJSONArray reads a JSON array: nested arrays are dimensions (unless
// elements are raw JSON), null is NULL, strings are unquoted and other
// scalars keep their JSON text.
func splitJSONArray(t string, rawJSON bool, depth int, r *rawArray) error {
	var items []json.RawMessage
	if err := json.Unmarshal([]byte(t), &items); err != nil {
		return err
	}
	if depth >= maxArrayDepth {
		return errUnsupported
	}
	for _, it := range items {
		s := strings.TrimSpace(string(it))
		nested := !rawJSON && strings.HasPrefix(s, "[")
		if !nested && !r.leafAt(depth) {
			return errUnsupported
		}
		switch {
		case nested:
			if err := splitJSONArray(s, rawJSON, depth+1, r); err != nil {
				return err
			}
		case s == "null":
			r.add("", true)
		case rawJSON:
			r.add(s, false)
		case strings.HasPrefix(s, `"`):
			var str string
			if err := json.Unmarshal(it, &str); err != nil {
				return err
			}
			r.add(str, false)
		default:
			r.add(s, false)
		}
	}
	if !recordDim(r, depth, len(items)) {
		return errUnsupported
	}
	return nil
}
