package filter

import (
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func cond(col string, op Op, value string) Condition {
	return Condition{Column: col, Op: op, Value: value}
}

func notCond(col string, op Op, value string) Condition {
	return Condition{Column: col, Op: op, Negate: true, Value: value}
}

func inCond(col, value string, list []string, hasNull bool) Condition {
	return Condition{Column: col, Op: OpIn, Value: value, List: list, NullInList: hasNull}
}

func numberedList(n int) (string, []string) {
	elems := make([]string, n)
	for i := range elems {
		elems[i] = strconv.Itoa(i)
	}
	return strings.Join(elems, ","), elems
}

func TestParse(t *testing.T) {
	list100, elems100 := numberedList(100)
	list101, _ := numberedList(101)
	long := strings.Repeat("o", 40)
	tests := []struct {
		name  string
		in    string
		want  []Condition
		error string // exact client text when Parse must fail
	}{
		// Whole string.
		{name: "empty string is no filter", in: "", want: nil},
		{name: "whitespace only is no filter", in: " \t\n ", want: nil},
		{name: "whole string trimmed", in: "  id=eq.1  ", want: []Condition{cond("id", OpEq, "1")}},
		{name: "ideographic space is trimmed", in: "\u3000id=eq.1\u3000", want: []Condition{cond("id", OpEq, "1")}},
		{name: "no-break space is not trimmed", in: "\u00a0id=eq.1", want: []Condition{cond("\u00a0id", OpEq, "1")}},

		// Splitting into conditions.
		{name: "conditions are ANDed in order", in: "id=gt.0,id=lt.100", want: []Condition{cond("id", OpGt, "0"), cond("id", OpLt, "100")}},
		{name: "each condition trimmed", in: "id=gt.0 ,  name=eq.x", want: []Condition{cond("id", OpGt, "0"), cond("name", OpEq, "x")}},
		{name: "empty segment in the middle", in: "id=eq.1,,id=eq.2", error: "Error parsing `filter` params: filter must not contain empty segments (check for extra commas)"},
		{name: "trailing comma", in: "id=eq.1,", error: "Error parsing `filter` params: filter must not contain empty segments (check for extra commas)"},
		{name: "leading comma", in: ",id=eq.1", error: "Error parsing `filter` params: filter must not contain empty segments (check for extra commas)"},
		{name: "blank segment", in: "id=eq.1, ,id=eq.2", error: "Error parsing `filter` params: filter must not contain empty segments (check for extra commas)"},
		{name: "comma inside parentheses does not split", in: "v=eq.(a,b),id=eq.1", want: []Condition{cond("v", OpEq, "(a,b)"), cond("id", OpEq, "1")}},
		{name: "unmatched closing parenthesis keeps depth at zero", in: "v=eq.),id=eq.1", want: []Condition{cond("v", OpEq, ")"), cond("id", OpEq, "1")}},
		{name: "unclosed parenthesis swallows later commas", in: "v=eq.(a,id=eq.1", want: []Condition{cond("v", OpEq, "(a,id=eq.1")}},
		{name: "quoted value protects commas", in: `name=eq."a,b",id=eq.1`, want: []Condition{cond("name", OpEq, "a,b"), cond("id", OpEq, "1")}},
		{name: "quoted value protects parentheses", in: `name=eq."(a",id=eq.1`, want: []Condition{cond("name", OpEq, "(a"), cond("id", OpEq, "1")}},
		{name: "escaped quote inside quotes", in: `name=eq."a\",b",id=eq.1`, want: []Condition{cond("name", OpEq, `a",b`), cond("id", OpEq, "1")}},
		{name: "quote not after a dot does not protect", in: `name=eq.x"a,b"`, error: "Error parsing `filter` params: [\"b\\\"\"]"},
		{name: "unterminated quote swallows the rest", in: `name=eq."a,id=eq.1`, want: []Condition{cond("name", OpEq, `"a,id=eq.1`)}},

		// One condition.
		{name: "split at the first equals sign", in: "v=eq.a=b", want: []Condition{cond("v", OpEq, "a=b")}},
		{name: "split at the first dot", in: "v=eq.1.5.x", want: []Condition{cond("v", OpEq, "1.5.x")}},
		{name: "empty value", in: "v=eq.", want: []Condition{cond("v", OpEq, "")}},
		{name: "column taken verbatim", in: "My Col =eq.1", want: []Condition{cond("My Col ", OpEq, "1")}},
		{name: "empty column", in: "=eq.1", want: []Condition{cond("", OpEq, "1")}},
		{name: "not prefix negates", in: "id=not.eq.1", want: []Condition{notCond("id", OpEq, "1")}},
		{name: "not prefix on every operator", in: "a=not.like.x%,b=not.is.null,c=not.in.(1)", want: []Condition{notCond("a", OpLike, "x%"), notCond("b", OpIs, "null"), {Column: "c", Op: OpIn, Negate: true, Value: "{1}", List: []string{"1"}}}},
		{name: "double not is an unknown operator", in: "id=not.not.eq.1", error: "Error parsing `filter` params: [\"not\", \"eq.1\"]"},
		{name: "no equals sign", in: "undefined", error: "Error parsing `filter` params: [\"undefined\"]"},
		{name: "no dot after the equals sign", in: "id=eq", error: "Error parsing `filter` params: [\"eq\"]"},
		{name: "no dot after not", in: "id=not.eq", error: "Error parsing `filter` params: [\"eq\"]"},
		{name: "nothing after the equals sign", in: "id=", error: "Error parsing `filter` params: [\"\"]"},
		{name: "unknown operator", in: "subject=foo.hey", error: "Error parsing `filter` params: [\"foo\", \"hey\"]"},
		{name: "unknown operator after not", in: "subject=not.foo.hey", error: "Error parsing `filter` params: [\"foo\", \"hey\"]"},
		{name: "operators are case-sensitive", in: "id=EQ.1", error: "Error parsing `filter` params: [\"EQ\", \"1\"]"},
		{name: "first bad condition wins", in: "id=eq.1,undefined,x=foo.y", error: "Error parsing `filter` params: [\"undefined\"]"},
		{name: "every operator", in: "a=eq.1,a=neq.1,a=lt.1,a=lte.1,a=gt.1,a=gte.1,a=like.1,a=ilike.1,a=is.null,a=match.1,a=imatch.1,a=isdistinct.1,a=in.(1)",
			want: []Condition{cond("a", OpEq, "1"), cond("a", OpNeq, "1"), cond("a", OpLt, "1"), cond("a", OpLte, "1"), cond("a", OpGt, "1"), cond("a", OpGte, "1"),
				cond("a", OpLike, "1"), cond("a", OpILike, "1"), cond("a", OpIs, "null"), cond("a", OpMatch, "1"), cond("a", OpIMatch, "1"), cond("a", OpIsDistinct, "1"),
				inCond("a", "{1}", []string{"1"}, false)}},

		// Inspect rendering of the pieces.
		{name: "inspect escapes quotes and backslashes", in: `id=foo.a"b\c`, error: "Error parsing `filter` params: [\"foo\", \"a\\\"b\\\\c\"]"},
		{name: "inspect escapes interpolation", in: "id=foo.#{x}", error: "Error parsing `filter` params: [\"foo\", \"\\#{x}\"]"},
		{name: "inspect escapes control characters", in: "id=foo.a\tb\x1b", error: "Error parsing `filter` params: [\"foo\", \"a\\tb\\e\"]"},
		{name: "inspect shows non-printable binaries as bytes", in: "id=foo.a\x00", error: "Error parsing `filter` params: [\"foo\", <<97, 0>>]"},
		{name: "inspect shows invalid UTF-8 as bytes", in: "id=foo.\xff", error: "Error parsing `filter` params: [\"foo\", <<255>>]"},
		{name: "inspect keeps printable unicode", in: "id=foo.é", error: "Error parsing `filter` params: [\"foo\", \"é\"]"},
		{name: "inspect breaks lists wider than 80 columns", in: "id=f" + long + ".v" + long, error: "Error parsing `filter` params: [\"f" + long + "\",\n \"v" + long + "\"]"},

		// Values.
		{name: "quoted value unquoted", in: `name=eq."hello"`, want: []Condition{cond("name", OpEq, "hello")}},
		{name: "quoted value with dots", in: `name=eq."a.b"`, want: []Condition{cond("name", OpEq, "a.b")}},
		{name: "backslash escapes inside quotes", in: `name=eq."say \"hi\" \\ ok"`, want: []Condition{cond("name", OpEq, `say "hi" \ ok`)}},
		{name: "unquoted value keeps quotes and backslashes", in: `name=eq.a"b\c`, want: []Condition{cond("name", OpEq, `a"b\c`)}},
		{name: "unterminated quoted value kept literally", in: `name=eq."abc`, want: []Condition{cond("name", OpEq, `"abc`)}},
		{name: "text after the closing quote keeps it literal", in: `name=eq."a"b`, want: []Condition{cond("name", OpEq, `"a"b`)}},
		{name: "trailing backslash keeps it literal", in: `name=eq."a\`, want: []Condition{cond("name", OpEq, `"a\`)}},
		{name: "lone quote kept literally", in: `name=eq."`, want: []Condition{cond("name", OpEq, `"`)}},
		{name: "empty quoted value", in: `name=eq.""`, want: []Condition{cond("name", OpEq, "")}},
		{name: "is value quoted", in: `ok=is."null"`, want: []Condition{cond("ok", OpIs, "null")}},

		// in lists.
		{name: "in list", in: "id=in.(1,2,3)", want: []Condition{inCond("id", "{1,2,3}", []string{"1", "2", "3"}, false)}},
		{name: "in list whitespace around elements ignored", in: "id=in.( 1 ,\t2 )", want: []Condition{inCond("id", "{ 1 ,\t2 }", []string{"1", "2"}, false)}},
		{name: "in list inner spaces kept", in: "name=in.(a b,c)", want: []Condition{inCond("name", "{a b,c}", []string{"a b", "c"}, false)}},
		{name: "in list quoted elements", in: `name=in.("a,b","c\"d",e,"")`, want: []Condition{inCond("name", `{"a,b","c\"d",e,""}`, []string{"a,b", `c"d`, "e", ""}, false)}},
		{name: "in list quoted element with parenthesis", in: `name=in.("a)",b),id=eq.1`, want: []Condition{inCond("name", `{"a)",b}`, []string{"a)", "b"}, false), cond("id", OpEq, "1")}},
		{name: "in list backslash escape unquoted", in: `name=in.(a\,b,c\ )`, want: []Condition{inCond("name", `{a\,b,c\ }`, []string{"a,b", "c "}, false)}},
		{name: "in list unquoted NULL is SQL null", in: "id=in.(1,NULL,null)", want: []Condition{inCond("id", "{1,NULL,null}", []string{"1"}, true)}},
		{name: "in list quoted NULL is a string", in: `name=in.("NULL")`, want: []Condition{inCond("name", `{"NULL"}`, []string{"NULL"}, false)}},
		{name: "in list escaped NULL is a string", in: `name=in.(N\ULL)`, want: []Condition{inCond("name", `{N\ULL}`, []string{"NULL"}, false)}},
		{name: "in list empty", in: "id=in.()", want: []Condition{inCond("id", "{}", nil, false)}},
		{name: "in list blank", in: "id=in.( )", want: []Condition{inCond("id", "{ }", nil, false)}},
		{name: "in list of 100", in: "id=in.(" + list100 + ")", want: []Condition{inCond("id", "{"+list100+"}", elems100, false)}},
		{name: "in list of 101", in: "id=in.(" + list101 + ")", error: "Error parsing `filter` params: too many values for `in` filter. Maximum 100"},
		{name: "in list NULLs count toward the limit", in: "id=in.(" + list100 + ",NULL)", error: "Error parsing `filter` params: too many values for `in` filter. Maximum 100"},
		{name: "value at the length cap", in: "name=like.%" + strings.Repeat("a", MaxValueBytes-1), want: []Condition{{Column: "name", Op: OpLike, Value: "%" + strings.Repeat("a", MaxValueBytes-1)}}},
		{name: "value over the length cap", in: "name=like.%" + strings.Repeat("a", MaxValueBytes) + "b", error: "Error parsing `filter` params: filter value too long. Maximum 4096 bytes"},
		{name: "the reported 100 KB pattern", in: "body=like.%" + strings.Repeat("a", 100<<10) + "b", error: "Error parsing `filter` params: filter value too long. Maximum 4096 bytes"},
		{name: "in element over the length cap", in: "name=in.(a," + strings.Repeat("x", MaxValueBytes+1) + ")", error: "Error parsing `filter` params: filter value too long. Maximum 4096 bytes"},
		{name: "100 conditions", in: strings.Repeat("id=eq.1,", 99) + "id=eq.1", want: slices.Repeat([]Condition{{Column: "id", Op: OpEq, Value: "1"}}, 100)},
		{name: "101 conditions", in: strings.Repeat("id=eq.1,", 100) + "id=eq.1", error: "Error parsing `filter` params: too many conditions in filter. Maximum 100"},
		{name: "in without parentheses", in: "id=in.1,2", error: "Error parsing `filter` params: `in` filter value must be wrapped by parentheses"},
		{name: "in with only an opening parenthesis", in: "id=in.(", error: "Error parsing `filter` params: `in` filter value must be wrapped by parentheses"},
		{name: "in with braces", in: "id=in.{1,2}", error: "Error parsing `filter` params: `in` filter value must be wrapped by parentheses"},
		{name: "in with empty element", in: "id=in.(1,,2)", error: "Error parsing `filter` params: malformed array literal: \"{1,,2}\""},
		{name: "in with trailing comma", in: "id=in.(1,)", error: "Error parsing `filter` params: malformed array literal: \"{1,}\""},
		{name: "in with text after a quoted element", in: `id=in.("a" b)`, error: "Error parsing `filter` params: malformed array literal: \"{\"a\" b}\""},
		{name: "in with a quote inside an element", in: `id=in.(a"b")`, error: "Error parsing `filter` params: malformed array literal: \"{a\"b\"}\""},
		{name: "in with nested braces", in: "id=in.({1},{2})", error: "Error parsing `filter` params: malformed array literal: \"{{1},{2}}\""},
		{name: "in with unterminated quote", in: `id=in.("a)`, error: "Error parsing `filter` params: malformed array literal: \"{\"a}\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.error != "" {
				var fe *Error
				if !errors.As(err, &fe) {
					t.Fatalf("Parse(%q) = %+v, %v; want *Error %q", tt.in, got, err, tt.error)
				}
				if fe.Error() != tt.error {
					t.Fatalf("Parse(%q) error\n got: %q\nwant: %q", tt.in, fe.Error(), tt.error)
				}
				if got != nil {
					t.Fatalf("Parse(%q) returned conditions with an error: %+v", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse(%q)\n got: %#v\nwant: %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestOpString(t *testing.T) {
	want := []string{"eq", "neq", "lt", "lte", "gt", "gte", "in", "like", "ilike", "is", "match", "imatch", "isdistinct"}
	for i, name := range want {
		op := Op(i + 1)
		if op.String() != name {
			t.Errorf("Op(%d).String() = %q, want %q", i+1, op.String(), name)
		}
		if got, ok := opByName(name); !ok || got != op {
			t.Errorf("opByName(%q) = %v, %v", name, got, ok)
		}
	}
	if got := Op(0).String(); got != "Op(0)" {
		t.Errorf("Op(0).String() = %q", got)
	}
	if got := Op(14).String(); got != "Op(14)" {
		t.Errorf("Op(14).String() = %q", got)
	}
}

func TestElixirInspectList(t *testing.T) {
	tests := []struct {
		name  string
		items []string
		want  string
	}{
		{"empty string", []string{""}, `[""]`},
		{"two strings", []string{"foo", "hey"}, `["foo", "hey"]`},
		{"DEL escaped", []string{"\x7f"}, `["\d"]`},
		{"hash without brace kept", []string{"#a"}, `["#a"]`},
		{"exactly 80 columns stays flat", []string{strings.Repeat("a", 36), strings.Repeat("b", 36)}, `["` + strings.Repeat("a", 36) + `", "` + strings.Repeat("b", 36) + `"]`},
		{"81 columns breaks", []string{strings.Repeat("a", 36), strings.Repeat("b", 37)}, `["` + strings.Repeat("a", 36) + "\",\n \"" + strings.Repeat("b", 37) + `"]`},
		{"single long element never breaks", []string{strings.Repeat("a", 100)}, `["` + strings.Repeat("a", 100) + `"]`},
		{"long binary is cut after 50 bytes", []string{strings.Repeat("\x01", 51)}, "[<<" + strings.Repeat("1, ", 50) + "...>>]"},
		{"long printable string is cut after 4096 characters", []string{strings.Repeat("a", 4097)}, `["` + strings.Repeat("a", 4096) + `" <> ...]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := elixirInspectList(tt.items...); got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}
