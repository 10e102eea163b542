package filter

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// null marks an SQL NULL in rowOf.
const null = "\x00NULL"

// testRow is a row image: a column missing from the map is absent.
type testRow map[string]Value

func (r testRow) Lookup(c string) (Value, bool) {
	v, ok := r[c]
	return v, ok
}

// rowOf builds a row from column/value pairs (null for SQL NULL).
func rowOf(kv ...string) testRow {
	r := testRow{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == null {
			r[kv[i]] = Value{Null: true}
		} else {
			r[kv[i]] = Value{Text: kv[i+1]}
		}
	}
	return r
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		row    testRow
		want   bool
	}{
		// Integers.
		{"int eq", "id=eq.5", rowOf("id", "5"), true},
		{"int eq other", "id=eq.5", rowOf("id", "6"), false},
		{"int eq ignores spaces and sign", "id=eq. +5 ", rowOf("id", "5"), true},
		{"int neq", "id=neq.5", rowOf("id", "6"), true},
		{"int neq equal", "id=neq.5", rowOf("id", "5"), false},
		{"int lt", "id=lt.5", rowOf("id", "-7"), true},
		{"int lt equal", "id=lt.5", rowOf("id", "5"), false},
		{"int lte", "id=lte.5", rowOf("id", "5"), true},
		{"int gt", "id=gt.5", rowOf("id", "10"), true},
		{"int gt numerically not textually", "id=gt.9", rowOf("id", "10"), true},
		{"int gte", "id=gte.5", rowOf("id", "4"), false},
		{"int in", "id=in.(1,5,9)", rowOf("id", "5"), true},
		{"int in miss", "id=in.(1,9)", rowOf("id", "5"), false},
		{"int empty in", "id=in.()", rowOf("id", "5"), false},
		{"int isdistinct", "id=isdistinct.5", rowOf("id", "6"), true},
		{"int isdistinct equal", "id=isdistinct.5", rowOf("id", "5"), false},
		{"int8 beyond 2^53 exact", "big=eq.9007199254740993", rowOf("big", "9007199254740992"), false},
		{"int8 beyond 2^53 equal", "big=eq.9007199254740993", rowOf("big", "9007199254740993"), true},
		{"int8 beyond 2^53 ordered", "big=gt.9007199254740992", rowOf("big", "9007199254740993"), true},
		{"int2", "small=lte.-3", rowOf("small", "-3"), true},

		// Numeric.
		{"numeric scale does not matter", "price=eq.10.5", rowOf("price", "10.50"), true},
		{"numeric exponent", "price=eq.1e3", rowOf("price", "1000"), true},
		{"numeric lt", "price=lt.10.05", rowOf("price", "10.049"), true},
		{"numeric gt negative", "price=gt.-1.5", rowOf("price", "-1.25"), true},
		{"numeric beyond 2^53", "price=neq.9007199254740993", rowOf("price", "9007199254740992"), true},
		{"numeric beyond int64", "price=gt.123456789012345678901234567890.49", rowOf("price", "123456789012345678901234567890.5"), true},
		{"numeric beyond int64 equal", "price=eq.123456789012345678901234567890.50", rowOf("price", "123456789012345678901234567890.5"), true},
		{"numeric small vs big", "price=lt.99999999999999999999", rowOf("price", "0.5"), true},
		{"numeric scaled compare overflow", "price=gt.0.000000000000000001", rowOf("price", "999999999999999999"), true},
		{"numeric NaN equals NaN", "price=eq.NaN", rowOf("price", "NaN"), true},
		{"numeric NaN above Infinity", "price=gt.Infinity", rowOf("price", "NaN"), true},
		{"numeric Infinity above all finite", "price=gt.1e100", rowOf("price", "Infinity"), true},
		{"numeric -Infinity below all", "price=lt.-1e100", rowOf("price", "-Infinity"), true},
		{"numeric in", "price=in.(1.10,2.20)", rowOf("price", "2.2"), true},

		// Floats.
		{"float eq", "score=eq.1.5", rowOf("score", "1.5"), true},
		{"float gt", "score=gt.1.5", rowOf("score", "1.50001"), true},
		{"float NaN equals NaN", "score=eq.NaN", rowOf("score", "NaN"), true},
		{"float NaN above Infinity", "score=gt.Infinity", rowOf("score", "NaN"), true},
		{"float nothing above NaN", "score=gt.NaN", rowOf("score", "Infinity"), false},
		{"float minus zero equals zero", "score=eq.-0", rowOf("score", "0"), true},
		{"float -Infinity", "score=lt.-1e308", rowOf("score", "-Infinity"), true},
		{"float4 compares at single precision", "ratio=eq.0.1", rowOf("ratio", "0.1"), true},
		{"float4 vs extra digits", "ratio=eq.0.1", rowOf("ratio", "0.100000001"), true},
		{"float8 vs extra digits", "score=eq.0.1", rowOf("score", "0.100000001"), false},
		{"float in", "score=in.(1,2.5)", rowOf("score", "2.5"), true},

		// Text.
		{"text eq", "name=eq.alice", rowOf("name", "alice"), true},
		{"text eq is case-sensitive", "name=eq.alice", rowOf("name", "Alice"), false},
		{"text neq", "name=neq.alice", rowOf("name", "bob"), true},
		{"text lt is byte-wise", "name=lt.a", rowOf("name", "B"), true},
		{"text gt", "name=gt.abc", rowOf("name", "abd"), true},
		{"text gte prefix", "name=gte.ab", rowOf("name", "abc"), true},
		{"text in", "name=in.(alice,bob)", rowOf("name", "bob"), true},
		{"text in miss", "name=in.(alice,bob)", rowOf("name", "carol"), false},
		{"text isdistinct", "name=isdistinct.x", rowOf("name", "y"), true},
		{"text value with dots", "name=eq.a.b.c", rowOf("name", "a.b.c"), true},
		{"quoted value with comma and dot", `name=eq."a,b.c",id=eq.1`, rowOf("name", "a,b.c", "id", "1"), true},
		{"quoted value with escaped quote", `name=eq."say \"hi\""`, rowOf("name", `say "hi"`), true},
		{"in quoted elements", `name=in.("a,b","c\"d")`, rowOf("name", `c"d`), true},
		{"in quoted NULL is the string", `name=in.("NULL")`, rowOf("name", "NULL"), true},
		{"in unquoted NULL is not the string", `name=in.(NULL)`, rowOf("name", "NULL"), false},
		{"varchar", "title=eq.Hi", rowOf("title", "Hi"), true},
		{"name type", "label=lt.b", rowOf("label", "a"), true},
		{"bpchar ignores trailing spaces", "code=eq.ab", rowOf("code", "ab   "), true},
		{"bpchar like sees the padding", "code=like.ab", rowOf("code", "ab   "), false},
		{"citext eq ignores case", "nick=eq.BOB", rowOf("nick", "bob"), true},
		{"citext in ignores case", "nick=in.(ALICE,BOB)", rowOf("nick", "Bob"), true},
		{"citext lt ignores case", "nick=lt.B", rowOf("nick", "a"), true},
		{"citext like ignores case", "nick=like.B%", rowOf("nick", "bob"), true},
		{"citext match ignores case", "nick=match.^B", rowOf("nick", "bob"), true},

		// like / ilike.
		{"like percent", "name=like.a%", rowOf("name", "alice"), true},
		{"like percent miss", "name=like.a%", rowOf("name", "bob"), false},
		{"like is anchored", "name=like.lic", rowOf("name", "alice"), false},
		{"like percent both sides", "name=like.%lic%", rowOf("name", "alice"), true},
		{"like underscore", "name=like.b_b", rowOf("name", "bob"), true},
		{"like underscore is one character", "name=like.b_b", rowOf("name", "boob"), false},
		{"like underscore is one rune", "name=like.caf_", rowOf("name", "café"), true},
		{"like escaped percent", `name=like.100\%`, rowOf("name", "100%"), true},
		{"like escaped percent is literal", `name=like.100\%`, rowOf("name", "1000"), false},
		{"like escaped underscore", `name=like.a\_b`, rowOf("name", "axb"), false},
		{"like escaped backslash", `name=like.a\\b`, rowOf("name", `a\b`), true},
		{"like backtracking", "name=like.%a%b%c", rowOf("name", "xaxbxbxc"), true},
		{"like backtracking miss", "name=like.%a%b%c", rowOf("name", "xaxcxbx"), false},
		{"like empty pattern", "name=like.", rowOf("name", ""), true},
		{"like percent matches empty", "name=like.%", rowOf("name", ""), true},
		{"like is case-sensitive", "name=like.A%", rowOf("name", "alice"), false},
		{"ilike", "name=ilike.A%", rowOf("name", "alice"), true},
		{"ilike unicode", "name=ilike.É%", rowOf("name", "école"), true},
		{"not like", "name=not.like.a%", rowOf("name", "bob"), true},

		// match / imatch.
		{"match", `name=match.^a\w+e$`, rowOf("name", "alice"), true},
		{"match is unanchored", "name=match.lic", rowOf("name", "alice"), true},
		{"match is case-sensitive", "name=match.^A", rowOf("name", "alice"), false},
		{"imatch", "name=imatch.^A", rowOf("name", "alice"), true},
		{"not match", "name=not.match.^b", rowOf("name", "alice"), true},

		// Booleans.
		{"bool eq t", "active=eq.true", rowOf("active", "t"), true},
		{"bool eq jsonb form", "active=eq.true", rowOf("active", "true"), true},
		{"bool eq false", "active=eq.false", rowOf("active", "f"), true},
		{"bool eq other spellings", "active=eq.yes", rowOf("active", "t"), true},
		{"bool neq", "active=neq.t", rowOf("active", "f"), true},
		{"bool false below true", "active=lt.true", rowOf("active", "f"), true},
		{"bool in", "active=in.(f)", rowOf("active", "false"), true},

		// uuid.
		{"uuid eq canonical", "uid=eq.a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", rowOf("uid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), true},
		{"uuid eq any case", "uid=eq.A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", rowOf("uid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), true},
		{"uuid eq braces no hyphens", "uid=eq.{a0eebc999c0b4ef8bb6d6bb9bd380a11}", rowOf("uid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), true},
		{"uuid neq", "uid=neq.a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", rowOf("uid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12"), true},
		{"uuid in", "uid=in.(a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11)", rowOf("uid", "B0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), true},
		{"uuid lt byte order", "uid=lt.b0000000-0000-0000-0000-000000000000", rowOf("uid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), true},

		// timestamptz.
		{"timestamptz same instant other zone", "at=eq.2024-05-01T10:00:00+00:00", rowOf("at", "2024-05-01 12:00:00+02"), true},
		{"timestamptz pgoutput form", "at=eq.2024-05-01T10:00:00Z", rowOf("at", "2024-05-01 10:00:00+00"), true},
		{"timestamptz jsonb form", "at=eq.2024-05-01 10:00:00+00", rowOf("at", "2024-05-01T10:00:00+00:00"), true},
		{"timestamptz without zone is UTC", "at=eq.2024-05-01 10:00:00", rowOf("at", "2024-05-01 10:00:00+00"), true},
		{"timestamptz half-hour zone", "at=eq.2024-05-01 10:00:00+05:30", rowOf("at", "2024-05-01 04:30:00+00"), true},
		{"timestamptz fractional seconds", "at=gt.2024-05-01 10:00:00.123456", rowOf("at", "2024-05-01 10:00:00.123457+00"), true},
		{"timestamptz fraction rounds to microseconds", "at=eq.2024-05-01 10:00:00.1234567", rowOf("at", "2024-05-01 10:00:00.123457+00"), true},
		{"timestamptz gte date only", "at=gte.2024-05-01", rowOf("at", "2024-05-01 00:00:00+00"), true},
		{"timestamptz lt", "at=lt.2024-05-01", rowOf("at", "2024-04-30 23:59:59.999999+00"), true},
		{"timestamptz across days by zone", "at=lt.2024-05-01 01:00:00+00", rowOf("at", "2024-05-01 02:00:00+02"), true},
		{"timestamptz leap day", "at=eq.2024-02-29 12:00:00+00", rowOf("at", "2024-02-29T12:00:00Z"), true},
		{"timestamptz infinity", "at=lt.infinity", rowOf("at", "294276-12-31 23:59:59+00"), true},
		{"timestamptz -infinity", "at=gt.-infinity", rowOf("at", "4713-11-24 00:00:00+00 BC"), true},
		{"timestamptz BC before AD", "at=lt.0001-01-01 00:00:00+00", rowOf("at", "0001-12-31 23:59:59+00 BC"), true},
		{"timestamptz epoch", "at=eq.epoch", rowOf("at", "1970-01-01 00:00:00+00"), true},
		{"timestamptz in", "at=in.(2024-01-01T00:00:00Z,2024-05-01T10:00:00Z)", rowOf("at", "2024-05-01 12:00:00+02"), true},
		{"timestamp ignores zones", "local=eq.2024-05-01 10:00:00+05", rowOf("local", "2024-05-01T10:00:00"), true},
		{"timestamp 24:00 is the next day", "local=eq.2024-05-02", rowOf("local", "2024-05-01 24:00:00"), true},
		{"timestamp fraction jsonb form", "local=gt.2024-05-01T12:00:00", rowOf("local", "2024-05-01T12:00:00.5"), true},

		// date, time, timetz.
		{"date eq", "day=eq.2024-05-01", rowOf("day", "2024-05-01"), true},
		{"date gte", "day=gte.2024-05-01", rowOf("day", "2024-04-30"), false},
		{"date ignores time", "day=eq.2024-05-01 23:00", rowOf("day", "2024-05-01"), true},
		{"date BC", "day=lt.0001-01-01", rowOf("day", "0044-03-15 BC"), true},
		{"date infinity", "day=gt.2024-05-01", rowOf("day", "infinity"), true},
		{"time eq", "clock=eq.12:34:56", rowOf("clock", "12:34:56"), true},
		{"time lt", "clock=lt.12:34", rowOf("clock", "12:33:59.999"), true},
		{"time ignores zone", "clock=eq.12:00+02", rowOf("clock", "12:00:00"), true},
		{"timetz eq same zone", "clocktz=eq.12:00+02", rowOf("clocktz", "12:00:00+02"), true},
		{"timetz same instant other zone is not equal", "clocktz=eq.12:00+02", rowOf("clocktz", "10:00:00+00"), false},
		{"timetz orders by UTC then zone", "clocktz=lt.10:00+00", rowOf("clocktz", "12:00:00+02"), true},
		{"timetz without zone is UTC", "clocktz=eq.10:00", rowOf("clocktz", "10:00:00+00"), true},

		// jsonb.
		{"jsonb key order", `doc=eq."{\"a\":1,\"b\":[1,2]}"`, rowOf("doc", `{"b": [1, 2], "a": 1}`), true},
		{"jsonb number spelling", `doc=eq."{\"a\":1.0}"`, rowOf("doc", `{"a": 1}`), true},
		{"jsonb array order matters", `doc=eq."[1,2]"`, rowOf("doc", `[2,1]`), false},
		{"jsonb duplicate keys keep the last", `doc=eq."{\"a\":1,\"a\":2}"`, rowOf("doc", `{"a":2}`), true},
		{"jsonb string escapes", `doc=eq."\"\\u00e9\""`, rowOf("doc", `"é"`), true},
		{"jsonb scalar", "doc=eq.5", rowOf("doc", "5.00"), true},
		{"jsonb null is a value", "doc=eq.null", rowOf("doc", "null"), true},
		{"jsonb neq", `doc=neq."{\"a\":1}"`, rowOf("doc", `{"a":2}`), true},
		{"jsonb in", `doc=in.("{\"a\":1}",2,"\"x\"")`, rowOf("doc", `"x"`), true},
		{"jsonb in miss", `doc=in.("{\"a\":1}",2)`, rowOf("doc", `{"a":2}`), false},
		{"jsonb isdistinct", `doc=isdistinct."{\"a\":1}"`, rowOf("doc", `{"a": 1}`), false},

		// bytea, arrays, interval, enum.
		{"bytea hex vs escape", `bin=eq.ab\\c\001`, rowOf("bin", `\x61625c6301`), true},
		{"bytea hex case", `bin=eq.\xFF00`, rowOf("bin", `\xff00`), true},
		{"bytea lt", `bin=lt.\x02`, rowOf("bin", `\x01ff`), true},
		{"int array eq", `nums=eq."{1,2,3}"`, rowOf("nums", "{1,2,3}"), true},
		{"int array eq jsonb form", `nums=eq."{1,2,3}"`, rowOf("nums", "[1, 2, 3]"), true},
		{"int array eq element spelling", `nums=eq."{1,2,3}"`, rowOf("nums", "{01,+2,3}"), true},
		{"int array length differs", `nums=eq."{1,2}"`, rowOf("nums", "{1,2,3}"), false},
		{"int array lt shorter", `nums=lt."{1,2,3}"`, rowOf("nums", "{1,2}"), true},
		{"int array NULLs equal", `nums=eq."{1,NULL}"`, rowOf("nums", "[1,null]"), true},
		{"int array NULL sorts last", `nums=gt."{1,5}"`, rowOf("nums", "{1,NULL}"), true},
		{"int array 2-D vs 1-D", `nums=eq."{1,2}"`, rowOf("nums", "{{1,2}}"), false},
		{"int array 2-D eq jsonb form", `nums=eq."{{1,2},{3,4}}"`, rowOf("nums", "[[1,2],[3,4]]"), true},
		{"int array with bounds", `nums=eq."{1,2}"`, rowOf("nums", "[0:1]={1,2}"), true},
		{"empty array", `nums=eq.{}`, rowOf("nums", "[]"), true},
		{"text array quoting", `tags=eq."{\"a,b\",c}"`, rowOf("tags", `["a,b","c"]`), true},
		{"text array neq", `tags=neq."{a}"`, rowOf("tags", `{b}`), true},
		{"jsonb array", `docs=eq."{\"{\\\"a\\\": 1}\"}"`, rowOf("docs", `[{"a":1}]`), true},
		{"interval by text", "dur=eq.1 day 02:00:00", rowOf("dur", "1 day 02:00:00"), true},
		{"interval by text only", "dur=eq.26 hours", rowOf("dur", "1 day 02:00:00"), false},
		{"enum eq", "mood=eq.happy", rowOf("mood", "happy"), true},
		{"enum in", "mood=in.(sad,happy)", rowOf("mood", "happy"), true},
		{"enum neq", "mood=neq.happy", rowOf("mood", "sad"), true},

		// not. and three-valued logic.
		{"not eq", "id=not.eq.5", rowOf("id", "6"), true},
		{"not eq equal", "id=not.eq.5", rowOf("id", "5"), false},
		{"not in", "id=not.in.(1,2)", rowOf("id", "3"), true},
		{"not in hit", "id=not.in.(1,2)", rowOf("id", "2"), false},
		{"eq NULL is unknown", "id=eq.5", rowOf("id", null), false},
		{"not eq NULL is still unknown", "id=not.eq.5", rowOf("id", null), false},
		{"neq NULL is unknown", "id=neq.5", rowOf("id", null), false},
		{"like NULL is unknown", "name=not.like.a%", rowOf("name", null), false},
		{"match NULL is unknown", "name=not.match.a", rowOf("name", null), false},
		{"in with NULL element hit", "id=in.(1,NULL)", rowOf("id", "1"), true},
		{"in with NULL element miss is unknown", "id=in.(1,NULL)", rowOf("id", "2"), false},
		{"not in with NULL element miss is unknown", "id=not.in.(1,NULL)", rowOf("id", "2"), false},
		{"not in with NULL element hit", "id=not.in.(1,NULL)", rowOf("id", "1"), false},
		{"in NULL column", "id=in.(1,2)", rowOf("id", null), false},
		{"not in NULL column", "id=not.in.(1,2)", rowOf("id", null), false},
		{"isdistinct NULL column", "id=isdistinct.5", rowOf("id", null), true},
		{"not isdistinct NULL column", "id=not.isdistinct.5", rowOf("id", null), false},
		{"not isdistinct equal", "id=not.isdistinct.5", rowOf("id", "5"), true},
		{"is null", "name=is.null", rowOf("name", null), true},
		{"is null on a value", "name=is.null", rowOf("name", "x"), false},
		{"not is null", "name=not.is.null", rowOf("name", "x"), true},
		{"not is null on NULL", "name=not.is.null", rowOf("name", null), false},
		{"is true", "active=is.true", rowOf("active", "t"), true},
		{"is true on false", "active=is.true", rowOf("active", "f"), false},
		{"is true on NULL", "active=is.true", rowOf("active", null), false},
		{"not is true on NULL", "active=not.is.true", rowOf("active", null), true},
		{"is false", "active=is.false", rowOf("active", "false"), true},
		{"not is false on true", "active=not.is.false", rowOf("active", "t"), true},
		{"is unknown on NULL", "active=is.unknown", rowOf("active", null), true},
		{"is unknown on a value", "active=is.unknown", rowOf("active", "t"), false},
		{"not is unknown on a value", "active=not.is.unknown", rowOf("active", "f"), true},
		{"is keyword any case", "name=is.NULL", rowOf("name", null), true},

		// AND and absent columns.
		{"and all true", "id=gt.1,name=eq.a,active=is.true", rowOf("id", "2", "name", "a", "active", "t"), true},
		{"and one false", "id=gt.1,name=eq.a", rowOf("id", "2", "name", "b"), false},
		{"and one unknown", "id=gt.1,name=eq.a", rowOf("id", "2", "name", null), false},
		{"and same column twice", "id=gt.1,id=lt.10", rowOf("id", "5"), true},
		{"and same column twice miss", "id=gt.1,id=lt.10", rowOf("id", "10"), false},
		{"absent column fails", "name=eq.a", rowOf("id", "1"), false},
		{"absent column fails negated", "name=not.eq.a", rowOf("id", "1"), false},
		{"absent column fails is null", "name=is.null", rowOf("id", "1"), false},
		{"absent column fails isdistinct", "name=isdistinct.a", rowOf("id", "1"), false},
		{"unparsable row value fails", "id=eq.5", rowOf("id", "five"), false},
		{"unparsable row value fails negated", "id=not.eq.5", rowOf("id", "five"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Compile(mustParse(t, tt.filter), testColumns)
			if err != nil {
				t.Fatalf("Compile(%q): %v", tt.filter, err)
			}
			if got := f.Match(tt.row); got != tt.want {
				t.Fatalf("Match(%v) with %q = %v, want %v", tt.row, tt.filter, got, tt.want)
			}
		})
	}
}

// TestMatchConcurrent runs one filter from many goroutines (meaningful
// under -race).
func TestMatchConcurrent(t *testing.T) {
	f, err := Compile(mustParse(t, `id=in.(1,2,3),name=ilike.a%,at=gte.2024-01-01,doc=neq.null,price=gt.1.5`), testColumns)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				id := fmt.Sprint((g + i) % 5)
				row := rowOf("id", id, "name", "Alice", "at", "2024-05-01 10:00:00+00", "doc", `{"a":1}`, "price", "2.00")
				want := id == "1" || id == "2" || id == "3"
				if got := f.Match(row); got != want {
					errs <- fmt.Sprintf("id %s: got %v want %v", id, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestNumericCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{"10.50", "10.5"}, {"-0.0", "0"}, {"1e3", "1000"}, {"0.05", "0.05"}, {"-12.340", "-12.34"},
		{"123456789012345678901234567890.50", "123456789012345678901234567890.5"},
		{"1e-20", "0.00000000000000000001"}, {"NaN", "NaN"}, {"-inf", "-Infinity"},
	}
	for _, tt := range tests {
		n, err := parseNumeric(tt.in)
		if err != nil {
			t.Fatalf("parseNumeric(%q): %v", tt.in, err)
		}
		if got := n.canonical(); got != tt.want {
			t.Errorf("canonical(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDaysFrom2000(t *testing.T) {
	tests := []struct {
		y    int64
		m, d int
		want int64
	}{
		{2000, 1, 1, 0}, {1970, 1, 1, -10957}, {2000, 3, 1, 60}, {1999, 12, 31, -1},
		{0, 12, 31, -730120}, {1, 1, 1, -730119},
	}
	for _, tt := range tests {
		if got := daysFrom2000(tt.y, tt.m, tt.d); got != tt.want {
			t.Errorf("daysFrom2000(%d-%d-%d) = %d, want %d", tt.y, tt.m, tt.d, got, tt.want)
		}
	}
	if !strings.Contains(fmt.Sprint(daysIn(2023, 2), daysIn(2024, 2), daysIn(1900, 2), daysIn(2000, 2)), "28 29 28 29") {
		t.Error("leap years")
	}
}
