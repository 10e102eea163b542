package filter

import (
	"cmp"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Numeric classes, ordered as PostgreSQL orders them: -Infinity < finite <
// +Infinity < NaN (NaN equals NaN).
const (
	numNegInf int8 = -1
	numFinite int8 = 0
	numPosInf int8 = 1
	numNaN    int8 = 2
)

// PostgreSQL numeric limits: decimal digits before the point, and digits
// after it (display scale).
const (
	numericMaxWeight = 131072
	numericMaxScale  = 16383
)

// numVal is a parsed numeric. A finite value is coef/10^scale when r is nil,
// or r otherwise; scale (>= 0) is the number of decimals either way, with no
// trailing zeros.
type numVal struct {
	cls   int8
	coef  int64
	scale int32
	r     *big.Rat
}

var pow10 = func() (p [19]int64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// pgSpace reports the bytes PostgreSQL's numeric input functions skip.
func pgSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func trimPGSpace(s string) string {
	for len(s) > 0 && pgSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && pgSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func syntaxErr(typ, s string) error {
	return &Error{Msg: "invalid input syntax for type " + typ + `: "` + s + `"`}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parseNumeric parses PostgreSQL 15 numeric input: optional sign, digits with
// an optional point, optional exponent, NaN and [+-]Infinity/inf in any case,
// surrounding whitespace.
func parseNumeric(s string) (numVal, error) {
	t := trimPGSpace(s)
	if len(t) > 0 && !isDigit(t[0]) && t[0] != '.' {
		body := t
		neg := false
		if t[0] == '+' || t[0] == '-' {
			neg = t[0] == '-'
			body = t[1:]
		}
		switch {
		case t[0] != '+' && t[0] != '-' && strings.EqualFold(body, "nan"):
			return numVal{cls: numNaN}, nil
		case strings.EqualFold(body, "infinity"), strings.EqualFold(body, "inf"):
			if neg {
				return numVal{cls: numNegInf}, nil
			}
			return numVal{cls: numPosInf}, nil
		}
	}
	i := 0
	neg := false
	if i < len(t) && (t[i] == '+' || t[i] == '-') {
		neg = t[i] == '-'
		i++
	}
	intStart := i
	for i < len(t) && isDigit(t[i]) {
		i++
	}
	intPart := t[intStart:i]
	var fracPart string
	if i < len(t) && t[i] == '.' {
		i++
		fs := i
		for i < len(t) && isDigit(t[i]) {
			i++
		}
		fracPart = t[fs:i]
	}
	if intPart == "" && fracPart == "" {
		return numVal{}, syntaxErr("numeric", s)
	}
	var exp int64
	if i < len(t) && (t[i] == 'e' || t[i] == 'E') {
		i++
		eneg := false
		if i < len(t) && (t[i] == '+' || t[i] == '-') {
			eneg = t[i] == '-'
			i++
		}
		es := i
		for i < len(t) && isDigit(t[i]) {
			if exp < 1e9 {
				exp = exp*10 + int64(t[i]-'0')
			}
			i++
		}
		if i == es {
			return numVal{}, syntaxErr("numeric", s)
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(t) {
		return numVal{}, syntaxErr("numeric", s)
	}
	scale := int64(len(fracPart)) - exp
	if scale > numericMaxScale {
		return numVal{}, errNumericOverflow()
	}
	// Significant digits: skip leading zeros, accumulate up to 18 in coef.
	var coef int64
	nd := 0
	for _, part := range [2]string{intPart, fracPart} {
		for j := 0; j < len(part); j++ {
			if nd == 0 && part[j] == '0' {
				continue
			}
			if nd < 18 {
				coef = coef*10 + int64(part[j]-'0')
			}
			nd++
		}
	}
	if nd == 0 {
		return numVal{}, nil // zero
	}
	if int64(nd)-scale > numericMaxWeight {
		return numVal{}, errNumericOverflow()
	}
	if nd <= 18 {
		// Canonical form: no trailing zeros after the point, no negative scale.
		for scale > 0 && coef%10 == 0 {
			coef /= 10
			scale--
		}
		if scale < 0 && int64(nd)-scale <= 18 {
			coef *= pow10[-scale]
			scale = 0
		}
		if scale >= 0 {
			if neg {
				coef = -coef
			}
			return numVal{coef: coef, scale: int32(scale)}, nil
		}
	}
	digits := strings.TrimLeft(intPart+fracPart, "0")
	for scale > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		scale--
	}
	n, _ := new(big.Int).SetString(digits, 10)
	if neg {
		n.Neg(n)
	}
	r := new(big.Rat)
	if scale >= 0 {
		r.SetFrac(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(scale), nil))
	} else {
		r.SetInt(n.Mul(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(-scale), nil)))
		scale = 0
	}
	return numVal{r: r, scale: int32(scale)}, nil
}

func errNumericOverflow() error { return &Error{Msg: "value overflows numeric format"} }

// rat returns a finite value as a big.Rat.
func (n numVal) rat() *big.Rat {
	if n.r != nil {
		return n.r
	}
	return new(big.Rat).SetFrac(big.NewInt(n.coef), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n.scale)), nil))
}

func sign64(x int64) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

// cmpNumeric orders numerics like PostgreSQL.
func cmpNumeric(a, b numVal) int {
	if a.cls != numFinite || b.cls != numFinite {
		return cmp.Compare(a.cls, b.cls)
	}
	if a.r == nil && b.r == nil {
		sa, sb := sign64(a.coef), sign64(b.coef)
		if sa != sb || sa == 0 {
			return cmp.Compare(sa, sb)
		}
		if a.scale == b.scale {
			return cmp.Compare(a.coef, b.coef)
		}
		x, y := a.coef, b.coef
		d := int(a.scale) - int(b.scale)
		if d < 0 {
			d = -d
		}
		if d < len(pow10) {
			// Scale the side with fewer decimals up, when it fits in int64.
			if a.scale < b.scale && abs64(x) <= math.MaxInt64/pow10[d] {
				return cmp.Compare(x*pow10[d], y)
			}
			if b.scale < a.scale && abs64(y) <= math.MaxInt64/pow10[d] {
				return cmp.Compare(x, y*pow10[d])
			}
		}
	}
	return a.rat().Cmp(b.rat())
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// canonical returns a decimal text that is equal for equal numerics (used
// for jsonb equality).
func (n numVal) canonical() string {
	switch n.cls {
	case numNaN:
		return "NaN"
	case numPosInf:
		return "Infinity"
	case numNegInf:
		return "-Infinity"
	}
	if n.r != nil {
		return n.r.FloatString(int(n.scale))
	}
	if n.scale == 0 {
		return strconv.FormatInt(n.coef, 10)
	}
	neg := n.coef < 0
	digits := strconv.FormatInt(abs64(n.coef), 10)
	if len(digits) <= int(n.scale) {
		digits = strings.Repeat("0", int(n.scale)-len(digits)+1) + digits
	}
	p := len(digits) - int(n.scale)
	out := digits[:p] + "." + digits[p:]
	if neg {
		out = "-" + out
	}
	return out
}
