package filter

import (
	"cmp"
	"encoding/json"
	"strings"

	"github.com/openrealtime/realtime/internal/pgtext"
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
			out := arrayVal[T]{dims: raw.Dims, elems: make([]T, len(raw.Elems))}
			for i, el := range raw.Elems {
				if raw.IsNull(i) {
					continue
				}
				v, err := e.parse(el)
				if err != nil {
					return arrayVal[T]{}, err
				}
				out.elems[i] = v
			}
			out.nulls = raw.Nulls
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

// splitArray splits an array value in PostgreSQL text form or JSON form.
func splitArray(s string, rawJSON bool) (pgtext.Array, error) {
	malformed := &Error{Msg: `malformed array literal: "` + s + `"`}
	a, err := pgtext.ParseArray(s, ',')
	if err == nil {
		return a, nil
	}
	// A value starting with '[' that is not "[lo:hi]={…}" may be the jsonb
	// rendering of an array.
	if t := trimPGSpace(s); strings.HasPrefix(t, "[") {
		var j jsonArray
		if err := j.split(t, rawJSON, 0); err == nil {
			return j.Array, nil
		}
	}
	return pgtext.Array{}, malformed
}

// jsonArray is an array read from its JSON form. Its shape follows the
// rules of PostgreSQL arrays that pgtext.ParseArray applies to the text
// form: rectangular, at most pgtext.MaxArrayDepth deep, only the whole
// array empty.
type jsonArray struct {
	pgtext.Array
	levels [pgtext.MaxArrayDepth]int // entries per level at each depth (0 = not seen)
	leaf   int                       // 1 + depth of the scalar elements (0 = none yet)
}

// leafAt notes a scalar element at depth; all scalars must share a depth.
func (r *jsonArray) leafAt(depth int) bool {
	if r.leaf == 0 {
		r.leaf = depth + 1
	}
	return r.leaf == depth+1
}

func (r *jsonArray) add(s string, null bool) {
	if null && r.Nulls == nil {
		r.Nulls = make([]bool, len(r.Elems), len(r.Elems)+1)
	}
	r.Elems = append(r.Elems, s)
	if r.Nulls != nil {
		r.Nulls = append(r.Nulls, null)
	}
}

// endLevel notes that a level at depth has count entries; all levels at
// the same depth must agree, and only a whole value may be empty ("[]").
func (r *jsonArray) endLevel(depth, count int) bool {
	if count == 0 {
		return depth == 0 && len(r.Elems) == 0
	}
	if r.levels[depth] == 0 {
		r.levels[depth] = count
	}
	if r.levels[depth] != count {
		return false
	}
	if depth == 0 && r.leaf > 0 {
		r.Dims = append([]int(nil), r.levels[:r.leaf]...)
	}
	return true
}

// split reads a JSON array: nested arrays are dimensions (unless elements
// are raw JSON), null is NULL, strings are unquoted and other scalars keep
// their JSON text.
func (r *jsonArray) split(t string, rawJSON bool, depth int) error {
	var items []json.RawMessage
	if err := json.Unmarshal([]byte(t), &items); err != nil {
		return err
	}
	if depth >= pgtext.MaxArrayDepth {
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
			if err := r.split(s, rawJSON, depth+1); err != nil {
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
	if !r.endLevel(depth, len(items)) {
		return errUnsupported
	}
	return nil
}
