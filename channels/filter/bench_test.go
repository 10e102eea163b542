package filter

import (
	"strconv"
	"strings"
	"testing"
)

func BenchmarkMatch(b *testing.B) {
	many := make([]string, 50)
	for i := range many {
		many[i] = "user-" + strconv.Itoa(i)
	}
	row := rowOf("id", "42", "name", "user-49", "at", "2024-05-01 10:00:00.123456+00", "price", "1234.50",
		"uid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "doc", `{"kind": "x", "n": [1, 2, 3]}`, "active", "t")
	benches := []struct{ name, filter string }{
		{"int_eq", "id=eq.42"},
		{"int_not_in", "id=not.in.(1,2,3,4,5)"},
		{"text_in_50", "name=in.(" + strings.Join(many, ",") + ")"},
		{"text_like", "name=like.user-%9"},
		{"text_imatch", "name=imatch.^USER-4"},
		{"timestamptz_range", "at=gte.2024-05-01,at=lt.2024-05-02"},
		{"numeric_gt", "price=gt.1000.25"},
		{"uuid_eq", "uid=eq.A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"},
		{"jsonb_eq", `doc=eq."{\"n\":[1,2,3],\"kind\":\"x\"}"`},
		{"bool_is_true", "active=is.true"},
		{"and_4", "id=gt.1,active=eq.true,at=gt.2024-01-01,name=neq.bob"},
	}
	for _, bb := range benches {
		conds, err := Parse(bb.filter)
		if err != nil {
			b.Fatal(err)
		}
		f, err := Compile(conds, testColumns)
		if err != nil {
			b.Fatal(err)
		}
		if !f.Match(row) {
			b.Fatalf("%s: filter %q does not match the benchmark row", bb.name, bb.filter)
		}
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f.Match(row)
			}
		})
	}
}

// BenchmarkLikeHostile runs LIKE patterns at the value cap that make a
// backtracking matcher quadratic against a 200 KB value (issue #13).
func BenchmarkLikeHostile(b *testing.B) {
	value := strings.Repeat("a", 200_000)
	for _, bb := range []struct{ name, pat string }{
		{"literal_4k", "%" + strings.Repeat("a", MaxValueBytes-3) + "b%"},
		{"underscores_256", "%" + strings.Repeat("a_", MaxLikeWildPiece/2-1) + "b%"},
		{"many_pieces", strings.Repeat("%ab", MaxValueBytes/3-1) + "%"},
	} {
		p, err := compileLike(bb.pat, false)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(value)))
			for b.Loop() {
				p.match(value)
			}
		})
	}
}
