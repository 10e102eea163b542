package filter

import (
	"errors"
	"unicode"
	"unicode/utf8"
)

// likeTok is one element of a compiled LIKE pattern.
type likeTok struct {
	kind byte // 'l' literal rune, '_' any one character, '%' any sequence
	r    rune
}

var errLikeEscape = errors.New("LIKE pattern must not end with escape character")

// compileLike compiles an SQL LIKE pattern: % matches any sequence, _ any one
// character, and a backslash makes the next character literal. With fold,
// literals are lower-cased (for ILIKE and citext).
func compileLike(pat string, fold bool) ([]likeTok, error) {
	var toks []likeTok
	for i := 0; i < len(pat); {
		r, n := utf8.DecodeRuneInString(pat[i:])
		i += n
		switch r {
		case '%':
			if len(toks) > 0 && toks[len(toks)-1].kind == '%' {
				continue // %% is %
			}
			toks = append(toks, likeTok{kind: '%'})
		case '_':
			toks = append(toks, likeTok{kind: '_'})
		case '\\':
			if i == len(pat) {
				return nil, errLikeEscape
			}
			r, n = utf8.DecodeRuneInString(pat[i:])
			i += n
			fallthrough
		default:
			if fold {
				r = unicode.ToLower(r)
			}
			toks = append(toks, likeTok{kind: 'l', r: r})
		}
	}
	return toks, nil
}

// likeMatch reports whether the whole of s matches the pattern. It
// backtracks only to the latest %, so it runs in O(len(s)·len(toks)).
func likeMatch(toks []likeTok, s string, fold bool) bool {
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(toks) && toks[p].kind != '%' {
			r, n := utf8.DecodeRuneInString(s[i:])
			if fold {
				r = unicode.ToLower(r)
			}
			if toks[p].kind == '_' || toks[p].r == r {
				p++
				i += n
				continue
			}
		} else if p < len(toks) { // %
			starP, starI = p, i
			p++
			continue
		}
		if starP < 0 {
			return false
		}
		// Let the latest % swallow one more character and retry.
		_, n := utf8.DecodeRuneInString(s[starI:])
		starI += n
		p, i = starP+1, starI
	}
	for p < len(toks) && toks[p].kind == '%' {
		p++
	}
	return p == len(toks)
}
