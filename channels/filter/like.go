package filter

import (
	"errors"
	"slices"
	"unicode"
	"unicode/utf8"
)

// LIKE matching without backtracking.
//
// A pattern is split at its % signs into pieces. The first piece is anchored
// at the start of the value and the last at its end (unless the pattern
// begins or ends with %); every piece in between is searched for leftmost,
// each search starting where the previous piece ended. Leftmost is always
// right: a later occurrence only leaves less room for the pieces after it.
// So the value is read once, left to right, and no position is revisited.
//
// A piece of literals only is found with Knuth–Morris–Pratt, so a whole match
// costs O(len(value) + len(pattern)) steps. A piece with `_` inside is found
// with the bit-parallel Shift-And algorithm, O(len(value)·⌈len(piece)/64⌉)
// steps; `_` at the ends of a piece are mere skips, and a piece with `_`
// between literals may be at most MaxLikeWildPiece characters, which bounds
// that factor at 4. The worst case of the obvious backtracking matcher,
// `%aaa…ab` against `aaa…a` (len(value)·len(pattern) steps), cannot occur.

// MaxLikeWildPiece is the longest %-free piece of a LIKE pattern that has a
// `_` between two literals (counted from its first to its last literal).
// Such a piece costs ⌈length/64⌉ steps per value character, so the cap keeps
// that at 4; longer ones are refused at Compile.
const MaxLikeWildPiece = 256

var errLikeWildPiece = errors.New("LIKE pattern too complex: a part between % signs with _ inside may be at most 256 characters long")

// likeSeg is one %-free piece of a LIKE pattern: runes where wild[i] means
// `_` (any one character).
type likeSeg struct {
	// skipBefore and skipAfter are the `_` a middle piece starts and ends
	// with, taken out of runes: the leftmost occurrence of `__abc` at or
	// after pos is the leftmost `abc` at or after pos+2 characters.
	skipBefore, skipAfter int
	runes                 []rune
	wild                  []bool // nil when runes have no `_`
	// fail is the KMP failure function (literal pieces only): fail[i] is
	// the length of the longest proper border of runes[:i+1].
	fail []int
	// Shift-And tables (pieces with `_` only): masks[r] has bit i set when
	// runes[i] is r or `_`; anyMask has the bits of the `_` positions.
	masks   map[rune][]uint64
	anyMask []uint64
	ascii   [][]uint64 // masks of runes < 128, indexed by rune (fast path)
}

// likePattern is a compiled LIKE pattern.
type likePattern struct {
	fold bool
	// noPercent: the pattern has no %, so segs[0] must be the whole value.
	noPercent bool
	head      likeSeg   // anchored at the start (may be empty)
	mids      []likeSeg // searched leftmost, in order
	tail      likeSeg   // anchored at the end (may be empty)
}

var errLikeEscape = errors.New("LIKE pattern must not end with escape character")

// compileLike compiles an SQL LIKE pattern: % matches any sequence, _ any one
// character, and a backslash makes the next character literal (PostgreSQL's
// default escape). With fold, literals are lower-cased (for ILIKE and citext)
// and so is every value character at match time.
func compileLike(pat string, fold bool) (*likePattern, error) {
	var segs []likeSeg
	cur := likeSeg{}
	for i := 0; i < len(pat); {
		r, n := utf8.DecodeRuneInString(pat[i:])
		i += n
		switch r {
		case '%':
			segs = append(segs, cur)
			cur = likeSeg{}
			continue
		case '_':
			if cur.wild == nil {
				cur.wild = make([]bool, len(cur.runes), len(cur.runes)+1)
			}
			cur.runes = append(cur.runes, 0)
			cur.wild = append(cur.wild, true)
			continue
		case '\\':
			if i == len(pat) {
				return nil, errLikeEscape
			}
			r, n = utf8.DecodeRuneInString(pat[i:])
			i += n
		}
		if fold {
			r = unicode.ToLower(r)
		}
		cur.runes = append(cur.runes, r)
		if cur.wild != nil {
			cur.wild = append(cur.wild, false)
		}
	}
	segs = append(segs, cur)
	p := &likePattern{fold: fold, noPercent: len(segs) == 1, head: segs[0]}
	if len(segs) > 1 {
		p.tail = segs[len(segs)-1]
		for _, s := range segs[1 : len(segs)-1] {
			if len(s.runes) == 0 {
				continue // %% is %
			}
			if err := s.prepare(); err != nil {
				return nil, err
			}
			p.mids = append(p.mids, s)
		}
	}
	return p, nil
}

// prepare moves a middle piece's leading and trailing `_` into skip counts
// and builds its search tables.
func (s *likeSeg) prepare() error {
	if s.wild != nil {
		for len(s.runes) > 0 && s.wild[0] {
			s.skipBefore++
			s.runes, s.wild = s.runes[1:], s.wild[1:]
		}
		for n := len(s.runes); n > 0 && s.wild[n-1]; n-- {
			s.skipAfter++
			s.runes, s.wild = s.runes[:n-1], s.wild[:n-1]
		}
		if !slices.Contains(s.wild, true) {
			s.wild = nil
		} else if len(s.runes) > MaxLikeWildPiece {
			return errLikeWildPiece
		}
	}
	m := len(s.runes)
	if m == 0 {
		return nil // only `_`: the skips are the whole piece
	}
	if s.wild == nil {
		s.fail = make([]int, m)
		k := 0
		for i := 1; i < m; i++ {
			for k > 0 && s.runes[i] != s.runes[k] {
				k = s.fail[k-1]
			}
			if s.runes[i] == s.runes[k] {
				k++
			}
			s.fail[i] = k
		}
		return nil
	}
	words := (m + 63) / 64
	s.anyMask = make([]uint64, words)
	for i, w := range s.wild {
		if w {
			s.anyMask[i/64] |= 1 << (i % 64)
		}
	}
	s.masks = make(map[rune][]uint64)
	for i, r := range s.runes {
		if s.wild[i] {
			continue
		}
		mk := s.masks[r]
		if mk == nil {
			mk = append([]uint64(nil), s.anyMask...)
			s.masks[r] = mk
		}
		mk[i/64] |= 1 << (i % 64)
	}
	s.ascii = make([][]uint64, utf8.RuneSelf)
	for r := range s.ascii {
		if mk, ok := s.masks[rune(r)]; ok {
			s.ascii[r] = mk
		} else {
			s.ascii[r] = s.anyMask
		}
	}
	return nil
}

// matchAt reports whether the piece matches s at byte offset i, and the
// offset just after it. It reads at most len(s.runes) runes.
func (g *likeSeg) matchAt(s string, i int, fold bool, steps *int) (int, bool) {
	for k, pr := range g.runes {
		*steps++
		if i >= len(s) {
			return 0, false
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if g.wild != nil && g.wild[k] {
			continue
		}
		if fold {
			r = unicode.ToLower(r)
		}
		if r != pr {
			return 0, false
		}
	}
	return i, true
}

// matchEnd reports whether the piece matches the end of s and does not start
// before byte offset from, and the offset where it starts.
func (g *likeSeg) matchEnd(s string, from int, fold bool, steps *int) (int, bool) {
	j := len(s)
	for k := len(g.runes) - 1; k >= 0; k-- {
		*steps++
		if j <= from {
			return 0, false
		}
		r, n := utf8.DecodeLastRuneInString(s[from:j])
		j -= n
		if g.wild != nil && g.wild[k] {
			continue
		}
		if fold {
			r = unicode.ToLower(r)
		}
		if r != g.runes[k] {
			return 0, false
		}
	}
	return j, true
}

// find returns the byte offset just after the leftmost occurrence of the
// piece in s[from:], or false.
func (g *likeSeg) find(s string, from int, fold bool, steps *int) (int, bool) {
	from, ok := skipRunes(s, from, g.skipBefore, steps)
	if !ok {
		return 0, false
	}
	switch {
	case len(g.runes) == 0:
	case g.wild == nil:
		from, ok = g.findKMP(s, from, fold, steps)
	default:
		from, ok = g.findShiftAnd(s, from, fold, steps)
	}
	if !ok {
		return 0, false
	}
	return skipRunes(s, from, g.skipAfter, steps)
}

// skipRunes returns the offset n characters after i in s, or false when s
// is shorter.
func skipRunes(s string, i, n int, steps *int) (int, bool) {
	for range n {
		*steps++
		if i >= len(s) {
			return 0, false
		}
		_, w := utf8.DecodeRuneInString(s[i:])
		i += w
	}
	return i, true
}

func (g *likeSeg) findKMP(s string, i int, fold bool, steps *int) (int, bool) {
	m := len(g.runes)
	q := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if fold {
			r = unicode.ToLower(r)
		}
		// Every fallback lowers q, and q rises by at most one per rune, so
		// the fallbacks cost at most one step per rune overall.
		for q > 0 && g.runes[q] != r {
			*steps++
			q = g.fail[q-1]
		}
		*steps++
		if g.runes[q] == r {
			q++
			if q == m {
				return i, true
			}
		}
	}
	return 0, false
}

func (g *likeSeg) findShiftAnd(s string, i int, fold bool, steps *int) (int, bool) {
	m := len(g.runes)
	words := len(g.anyMask)
	last, lastBit := (m-1)/64, uint64(1)<<((m-1)%64)
	d := make([]uint64, words)
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if fold {
			r = unicode.ToLower(r)
		}
		var mk []uint64
		if r >= 0 && r < utf8.RuneSelf {
			mk = g.ascii[r]
		} else if m, ok := g.masks[r]; ok {
			mk = m
		} else {
			mk = g.anyMask
		}
		// d = ((d << 1) | 1) & mk, over the whole bit vector.
		carry := uint64(1)
		for w := range words {
			*steps++
			next := d[w] >> 63
			d[w] = (d[w]<<1 | carry) & mk[w]
			carry = next
		}
		if d[last]&lastBit != 0 {
			return i, true
		}
	}
	return 0, false
}

// match reports whether the whole of s matches the pattern.
func (p *likePattern) match(s string) bool {
	var steps int
	return p.matchSteps(s, &steps)
}

// matchSteps is match that also counts its elementary steps (one rune
// comparison or one 64-bit Shift-And word) into *steps, so tests can check
// that the work is linear without timing anything.
func (p *likePattern) matchSteps(s string, steps *int) bool {
	pos, ok := p.head.matchAt(s, 0, p.fold, steps)
	if !ok {
		return false
	}
	if p.noPercent {
		return pos == len(s)
	}
	end, ok := p.tail.matchEnd(s, pos, p.fold, steps)
	if !ok {
		return false
	}
	region := s[:end]
	for i := range p.mids {
		if pos, ok = p.mids[i].find(region, pos, p.fold, steps); !ok {
			return false
		}
	}
	return true
}
