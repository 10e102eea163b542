package pgtext

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseArray(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		delim byte
		dims  []int
		elems []string
		nulls []bool // nil: no NULL element
		bad   bool
	}{
		{name: "empty", in: "{}"},
		{name: "empty with spaces", in: " { } "},
		{name: "ints", in: "{1,2,3}", dims: []int{3}, elems: []string{"1", "2", "3"}},
		{name: "null any case", in: "{1,NULL,null}", dims: []int{3}, elems: []string{"1", "", ""}, nulls: []bool{false, true, true}},
		{name: "quoted NULL is text", in: `{"NULL"}`, dims: []int{1}, elems: []string{"NULL"}},
		{name: "escaped NULL is text", in: `{\NULL}`, dims: []int{1}, elems: []string{"NULL"}},
		{name: "quoting and escapes", in: `{"a b","x\"y","\\",""}`, dims: []int{4}, elems: []string{"a b", `x"y`, `\`, ""}},
		{name: "whitespace trimmed", in: "{ a b ,\tc\n}", dims: []int{2}, elems: []string{"a b", "c"}},
		{name: "escaped trailing space kept", in: `{a\ }`, dims: []int{1}, elems: []string{"a "}},
		{name: "2-dim", in: "{{1,2},{3,4}}", dims: []int{2, 2}, elems: []string{"1", "2", "3", "4"}},
		{name: "3-dim", in: "{{{1},{2}},{{3},{NULL}}}", dims: []int{2, 2, 1}, elems: []string{"1", "2", "3", ""}, nulls: []bool{false, false, false, true}},
		{name: "bounds", in: "[0:1]={7,8}", dims: []int{2}, elems: []string{"7", "8"}},
		{name: "2-dim bounds", in: "[-1:0][2:3]= {{1,2},{3,4}}", dims: []int{2, 2}, elems: []string{"1", "2", "3", "4"}},
		{name: "semicolon delimiter", in: "{(1,2),(0,0);(3,3),(1,1)}", delim: ';', dims: []int{2}, elems: []string{"(1,2),(0,0)", "(3,3),(1,1)"}},
		{name: "max depth", in: "{{{{{{1}}}}}}", dims: []int{1, 1, 1, 1, 1, 1}, elems: []string{"1"}},
		{name: "too deep", in: "{{{{{{{1}}}}}}}", bad: true},
		{name: "unclosed", in: "{1,2", bad: true},
		{name: "trailing text", in: "{1} x", bad: true},
		{name: "empty element", in: "{1,,2}", bad: true},
		{name: "trailing delimiter", in: "{1,}", bad: true},
		{name: "ragged", in: "{{1,2},{3}}", bad: true},
		{name: "mixed depth", in: "{1,{2}}", bad: true},
		{name: "empty sub-array", in: "{{}}", bad: true},
		{name: "quote inside unquoted", in: `{a"b"}`, bad: true},
		{name: "text after quoted", in: `{"a"b}`, bad: true},
		{name: "unterminated quote", in: `{"a}`, bad: true},
		{name: "trailing backslash", in: `{a\`, bad: true},
		{name: "bounds without colon", in: "[1]={1}", bad: true},
		{name: "bounds without literal", in: "[1:2]", bad: true},
		{name: "no braces", in: "1,2", bad: true},
		{name: "empty input", in: "", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseArray(tc.in, tc.delim)
			if tc.bad {
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("ParseArray(%q) = %+v, %v; want ErrSyntax", tc.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseArray(%q): %v", tc.in, err)
			}
			if !slices.Equal(got.Dims, tc.dims) || !slices.Equal(got.Elems, tc.elems) || !slices.Equal(got.Nulls, tc.nulls) {
				t.Fatalf("ParseArray(%q) = %+v, want dims %v elems %q nulls %v", tc.in, got, tc.dims, tc.elems, tc.nulls)
			}
		})
	}
}

func TestParseRecord(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Field
		bad  bool
	}{
		{name: "plain", in: "(1,abc)", want: []Field{{Text: "1"}, {Text: "abc"}}},
		{name: "nulls and empty", in: `(,"",,)`, want: []Field{{Null: true}, {Text: ""}, {Null: true}, {Null: true}}},
		{name: "no attributes", in: "()", want: []Field{{Null: true}}},
		{name: "quoted comma and doubled quote", in: `("x,""y")`, want: []Field{{Text: `x,"y`}}},
		{name: "backslash escapes", in: `(a\,b,"c\"d")`, want: []Field{{Text: "a,b"}, {Text: `c"d`}}},
		{name: "quoted and unquoted concatenate", in: `(a"b c"d)`, want: []Field{{Text: "ab cd"}}},
		{name: "inner spaces kept", in: " ( a ,b) ", want: []Field{{Text: " a "}, {Text: "b"}}},
		{name: "nested record as text", in: `("(1,""x"")","{1,2}")`, want: []Field{{Text: `(1,"x")`}, {Text: "{1,2}"}}},
		{name: "no parenthesis", in: "1,2", bad: true},
		{name: "unclosed", in: "(1,2", bad: true},
		{name: "unterminated quote", in: `("a)`, bad: true},
		{name: "trailing backslash", in: `(a\`, bad: true},
		{name: "trailing text", in: "(1)x", bad: true},
		{name: "empty input", in: "", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRecord(tc.in)
			if tc.bad {
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("ParseRecord(%q) = %+v, %v; want ErrSyntax", tc.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRecord(%q): %v", tc.in, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("ParseRecord(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

// formatArray prints a the way array_out would, quoting every element.
func formatArray(a Array, delim byte) string {
	if len(a.Dims) == 0 {
		return "{}"
	}
	var b strings.Builder
	k := 0
	var level func(d int)
	level = func(d int) {
		b.WriteByte('{')
		for i := range a.Dims[d] {
			if i > 0 {
				b.WriteByte(delim)
			}
			if d+1 < len(a.Dims) {
				level(d + 1)
				continue
			}
			if a.IsNull(k) {
				b.WriteString("NULL")
			} else {
				b.WriteString(quote(a.Elems[k]))
			}
			k++
		}
		b.WriteByte('}')
	}
	level(0)
	return b.String()
}

// formatRecord prints fields the way record_out would, quoting every
// non-NULL field.
func formatRecord(fields []Field) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		if !f.Null {
			b.WriteString(quote(f.Text))
		}
	}
	b.WriteByte(')')
	return b.String()
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// FuzzParse checks that the parsers never panic, that what they accept is
// consistent, and that printing a parsed value and parsing it again gives
// the same value. Run with a fixed count: -fuzz FuzzParse -fuzztime 100000x.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"{}", "{1,NULL,\"a b\"}", "{{1,2},{3,4}}", "[0:1]={7,8}", `{"x\"y",\\}`, "{{{{{{1}}}}}}",
		"{(1,2),(0,0);(3,3),(1,1)}", "{", `{"`, `{\`, "[", "[1:2]", "()", `(,"",a)`, `("x,""y",\a)`, "(", `("`,
		"\xff", "{{}}", "{1,{2}}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, delim := range []byte{',', ';'} {
			a, err := ParseArray(s, delim)
			if err != nil {
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("ParseArray(%q) error %v does not match ErrSyntax", s, err)
				}
				continue
			}
			n := 1
			for _, d := range a.Dims {
				if d <= 0 {
					t.Fatalf("ParseArray(%q) dims %v", s, a.Dims)
				}
				n *= d
			}
			if len(a.Dims) == 0 {
				n = 0
			}
			if len(a.Dims) > MaxArrayDepth || n != len(a.Elems) || (a.Nulls != nil && len(a.Nulls) != n) {
				t.Fatalf("ParseArray(%q) = %+v: inconsistent", s, a)
			}
			again, err := ParseArray(formatArray(a, delim), delim)
			if err != nil || !slices.Equal(again.Dims, a.Dims) || !slices.Equal(again.Elems, a.Elems) ||
				!slices.Equal(again.Nulls, a.Nulls) {
				t.Fatalf("ParseArray(%q) = %+v, reparsed %+v, %v", s, a, again, err)
			}
		}
		fields, err := ParseRecord(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("ParseRecord(%q) error %v does not match ErrSyntax", s, err)
			}
			return
		}
		if len(fields) == 0 {
			t.Fatalf("ParseRecord(%q) accepted no fields", s)
		}
		again, err := ParseRecord(formatRecord(fields))
		if err != nil || !slices.Equal(again, fields) {
			t.Fatalf("ParseRecord(%q) = %+v, reparsed %+v, %v", s, fields, again, err)
		}
	})
}
