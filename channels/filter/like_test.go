package filter

import (
	"math/rand"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// refLike is a plain recursive LIKE matcher, exponential in the worst case
// but obviously right: the reference for the differential tests.
func refLike(pat, s []rune) bool {
	if len(pat) == 0 {
		return len(s) == 0
	}
	switch pat[0] {
	case '%':
		for i := 0; i <= len(s); i++ {
			if refLike(pat[1:], s[i:]) {
				return true
			}
		}
		return false
	case '_':
		return len(s) > 0 && refLike(pat[1:], s[1:])
	case '\\':
		pat = pat[1:] // compileLike refuses a trailing escape
	}
	return len(s) > 0 && s[0] == pat[0] && refLike(pat[1:], s[1:])
}

func refLikeString(pat, s string, fold bool) bool {
	if fold {
		pat, s = strings.Map(unicode.ToLower, pat), strings.Map(unicode.ToLower, s)
		// An escaped letter stays a literal after lower-casing.
	}
	return refLike([]rune(pat), []rune(s))
}

func checkLike(t *testing.T, pat, s string, fold bool) {
	t.Helper()
	p, err := compileLike(pat, fold)
	if err != nil {
		return
	}
	if got, want := p.match(s), refLikeString(pat, s, fold); got != want {
		t.Fatalf("like(%q, %q, fold=%v) = %v, reference %v", s, pat, fold, got, want)
	}
}

// TestLikeDifferential compares the linear matcher with the reference on
// random patterns and values over a small alphabet, where overlaps, repeated
// prefixes and wildcards next to each other are frequent.
func TestLikeDifferential(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	pats := []string{"%", "%", "_", "_", `\`, "a", "a", "b", "A", "é", "ß"}
	vals := []string{"a", "a", "a", "b", "A", "é", "É", "ß", "%", "_"}
	gen := func(alphabet []string, n int) string {
		var b strings.Builder
		for range rng.Intn(n + 1) {
			b.WriteString(alphabet[rng.Intn(len(alphabet))])
		}
		return b.String()
	}
	for range 200000 {
		pat, s := gen(pats, 9), gen(vals, 14)
		if rng.Intn(4) == 0 {
			s = strings.NewReplacer("%", "ab", "_", "a", `\`, "").Replace(pat)
		}
		checkLike(t, pat, s, rng.Intn(2) == 0)
	}
	// Pieces longer than one Shift-And word.
	for range 2000 {
		pat := "%" + gen([]string{"a", "a", "_", "b"}, 150) + "%" + gen([]string{"a", "_"}, 70)
		s := gen([]string{"a", "a", "b"}, 400)
		checkLike(t, pat, s, false)
	}
}

func FuzzLike(f *testing.F) {
	for _, s := range [][2]string{{"%a_b%", "xaxbx"}, {`a\%%`, "a%bc"}, {"%ab%ab", "abab"}, {"_%_", "é"}, {"%É%", "aéa"}} {
		f.Add(s[0], s[1], false)
		f.Add(s[0], s[1], true)
	}
	f.Fuzz(func(t *testing.T, pat, s string, fold bool) {
		if len(pat) > 24 || len(s) > 64 || !utf8.ValidString(pat) || !utf8.ValidString(s) {
			return // the reference is exponential; values from PostgreSQL are valid UTF-8
		}
		checkLike(t, pat, s, fold)
	})
}

// TestLikeLinearWork runs the pattern that stalled the fan-out, `%a…(100 KB)b`
// against a 200 KB value of a's: a backtracking matcher needs about
// 100 000 × 100 000 steps; this one must stay within a small multiple of the
// input size. Work is counted in steps, not timed.
func TestLikeLinearWork(t *testing.T) {
	const m, n = 100_000, 200_000
	value := strings.Repeat("a", n)
	for _, tc := range []struct {
		name, pat, value string
		want             bool
		perByte          int // steps allowed per byte of pattern + value
	}{
		{"the reported pattern", "%" + strings.Repeat("a", m) + "b", value, false, 3},
		{"the reported pattern, value ending in b", "%" + strings.Repeat("a", m) + "b", value + "b", true, 3},
		{"the reported pattern, value ending in c", "%" + strings.Repeat("a", m) + "b", value + "c", false, 3},
		{"long literal searched in the middle", "%" + strings.Repeat("a", m) + "b%", value, false, 3},
		{"long literal found at the end", "%" + strings.Repeat("a", m) + "b%", value + "b", true, 3},
		{"literal pieces between %", strings.Repeat("%"+strings.Repeat("a", 1000)+"b", 100) + "%", value, false, 3},
		{"many short pieces", strings.Repeat("%ab", m/3) + "%", strings.Repeat("ab", n/2), true, 3},
		{"ilike long literal searched in the middle", "%" + strings.Repeat("A", m) + "B%", value, false, 3},
		// With `_` inside a piece the cost is per 64-rune word of the piece;
		// MaxLikeWildPiece bounds the piece, and so the factor, at 4.
		{"piece with _ inside at its cap", "%" + strings.Repeat("a_", MaxLikeWildPiece/2-1) + "b%", value, false, MaxLikeWildPiece/64 + 1},
		{"pieces with _ inside at their cap", strings.Repeat("%"+strings.Repeat("a_", MaxLikeWildPiece/2-1)+"b", 10) + "%", value, false, MaxLikeWildPiece/64 + 1},
		{"_ at the ends of a long literal piece", "%__" + strings.Repeat("a", 3000) + "b__%", value, false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := compileLike(tc.pat, strings.HasPrefix(tc.name, "ilike"))
			if err != nil {
				t.Fatal(err)
			}
			steps := 0
			if got := p.matchSteps(tc.value, &steps); got != tc.want {
				t.Fatalf("match = %v, want %v", got, tc.want)
			}
			if limit := tc.perByte * (len(tc.pat) + len(tc.value)); steps > limit {
				t.Fatalf("%d steps for a %d-byte pattern and a %d-byte value; want at most %d", steps, len(tc.pat), len(tc.value), limit)
			}
			t.Logf("%d steps", steps)
		})
	}
}

func TestLikeWildPieceCap(t *testing.T) {
	at := "%" + strings.Repeat("a_", MaxLikeWildPiece/2-1) + "b%"
	if _, err := compileLike(at, false); err != nil {
		t.Fatalf("piece at the cap: %v", err)
	}
	over := "%" + strings.Repeat("a_", MaxLikeWildPiece/2) + "b%"
	if _, err := compileLike(over, false); err != errLikeWildPiece {
		t.Fatalf("piece over the cap: %v", err)
	}
	// `_` at the ends of pieces, and in the anchored first and last pieces,
	// do not count.
	for _, p := range []string{
		"%" + strings.Repeat("_", 1000) + "a%",
		strings.Repeat("a_", 1000) + "%" + strings.Repeat("_b", 1000),
		strings.Repeat("a_", 1000),
	} {
		if _, err := compileLike(p, false); err != nil {
			t.Fatalf("%.20q…: %v", p, err)
		}
	}
}
