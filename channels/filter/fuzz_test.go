package filter

import (
	"errors"
	"strings"
	"testing"
)

// fuzzRow has a value for every column of testColumns.
var fuzzRow = rowOf(
	"id", "5", "big", "9007199254740993", "small", "-2", "price", "10.50", "score", "NaN", "ratio", "0.1",
	"name", "alice", "title", "a,b.c", "code", "ab  ", "nick", "Bob", "label", "x", "active", "t",
	"uid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "at", "2024-05-01 10:00:00+00", "local", "2024-05-01T12:00:00.5",
	"day", "2024-05-01", "clock", "12:34:56", "clocktz", "12:34:56+02", "doc", `{"a": [1, 2], "b": null}`,
	"raw", `{"a":1}`, "bin", `\x0102ff`, "tags", `{a,"b c",NULL}`, "nums", "[1,2,null]", "docs", `[{"a":1}]`,
	"dur", "1 day 02:00:00", "mood", "happy", "secret", "s",
)

// fuzzNullRow has every column NULL.
var fuzzNullRow = func() testRow {
	r := testRow{}
	for c := range testColumns {
		r[c] = Value{Null: true}
	}
	return r
}()

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "id=eq.5", "id=not.in.(1,2,NULL)", `name=eq."a,b",id=gt.1`, "undefined", "a=foo.b", "id=in.1,2",
		"x=eq.1,,y=eq.2", `name=in.("a\"b",NULL,"c,d")`, "active=is.TRUE", "name=imatch.^a(b|c)*$",
		`name=like.a\%_%`, "at=gte.2024-05-01T10:00:00+05:30", "price=lt.1e3", "doc=eq.\"{\\\"a\\\":1}\"",
		`nums=eq."{{1,2},{3,4}}"`, "uid=isdistinct.A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "id=in.(", `name=eq."`,
		"code=eq.ab", "clocktz=lt.10:00+00", "bin=eq.\\x01", "dur=eq.1 day", "mood=in.(happy)", "id=eq.\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		conds, err := Parse(s)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) || !strings.HasPrefix(fe.Msg, parsePrefix) {
				t.Fatalf("Parse(%q) error %v is not a parse *Error", s, err)
			}
			if conds != nil {
				t.Fatalf("Parse(%q) returned conditions with an error", s)
			}
			return
		}
		for _, c := range conds {
			if !c.Op.valid() {
				t.Fatalf("Parse(%q) produced operator %v", s, c.Op)
			}
			if c.Op == OpIn && len(c.List)+boolToInt(c.NullInList) > MaxInValues {
				t.Fatalf("Parse(%q) accepted %d values", s, len(c.List))
			}
		}
		flt, err := Compile(conds, testColumns)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) || fe.Msg == "" || flt != nil {
				t.Fatalf("Compile(%q) = %v, %v", s, flt, err)
			}
			return
		}
		got := flt.Match(fuzzRow)
		flt.Match(fuzzNullRow)
		if flt != nil && flt.Match(testRow{}) {
			t.Fatalf("%q matched a row without its columns", s)
		}
		// The canonical text reads back to the same filter.
		text := flt.String()
		conds2, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse(String()) of %q: %q: %v", s, text, err)
		}
		flt2, err := Compile(conds2, testColumns)
		if err != nil {
			t.Fatalf("Compile(Parse(String())) of %q: %q: %v", s, text, err)
		}
		if flt2.String() != text {
			t.Fatalf("round trip of %q: %q -> %q", s, text, flt2.String())
		}
		if flt2.Match(fuzzRow) != got {
			t.Fatalf("round trip of %q changed Match", s)
		}
	})
}
