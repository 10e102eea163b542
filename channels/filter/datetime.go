package filter

import (
	"cmp"
	"math"
	"strings"
)

const (
	usecPerSec = int64(1_000_000)
	usecPerDay = 86_400 * usecPerSec
	// daysUnixTo2000 is the day number of 2000-01-01, PostgreSQL's epoch,
	// counted from 1970-01-01.
	daysUnixTo2000 = 10_957
	maxZoneSeconds = 15*3600 + 59*60 + 59
)

// Infinite timestamps and dates, as PostgreSQL represents them.
const (
	dtNegInf = math.MinInt64
	dtPosInf = math.MaxInt64
)

// Year ranges (astronomical years: 1 BC is 0) PostgreSQL accepts.
const (
	minYear          = -4713
	maxTimestampYear = 294276
	maxDateYear      = 5874897
)

// dtFields is a parsed ISO date/time text.
type dtFields struct {
	special  int8 // 0, or -1/+1 for -infinity/infinity, or 2 for epoch
	hasDate  bool
	year     int64 // astronomical
	month    int
	day      int
	hasTime  bool
	tod      int64 // microseconds since midnight, at most 24:00:00
	hasZone  bool
	zoneEast int64 // seconds east of UTC
}

type dtErr int

const (
	dtOK dtErr = iota
	dtSyntax
	dtFieldRange
	dtZoneRange
	dtUnsupported
)

// dtScanner reads a date/time text.
type dtScanner struct {
	s string
	i int
}

func (p *dtScanner) digits() string {
	st := p.i
	for p.i < len(p.s) && isDigit(p.s[p.i]) {
		p.i++
	}
	return p.s[st:p.i]
}

func (p *dtScanner) skipSpaces() bool {
	st := p.i
	for p.i < len(p.s) && pgSpace(p.s[p.i]) {
		p.i++
	}
	return p.i > st
}

func (p *dtScanner) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

// word consumes w (case-insensitive) when it follows.
func (p *dtScanner) word(w string) bool {
	if len(p.s)-p.i >= len(w) && strings.EqualFold(p.s[p.i:p.i+len(w)], w) {
		p.i += len(w)
		return true
	}
	return false
}

func atoi(s string) int64 {
	var n int64
	for i := 0; i < len(s); i++ {
		if n > math.MaxInt64/100 {
			return math.MaxInt64 / 10 // saturate; range checks reject it
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n
}

// parseDT parses the ISO subset of PostgreSQL date/time input:
//
//	[YYYY-MM-DD] [(T|spaces) HH:MM[:SS[.frac]]] [spaces] [Z|UTC|GMT|±HH[[:]MM[[:]SS]]] [spaces BC|AD]
//
// plus infinity, +infinity, -infinity and epoch. now, today, tomorrow,
// yesterday and allballs are reported as unsupported.
func parseDT(s string) (dtFields, dtErr) {
	var f dtFields
	t := trimPGSpace(s)
	// Special words start with a letter, possibly after a sign.
	if t != "" && !isDigit(t[0]) && (len(t) < 2 || !isDigit(t[1])) {
		if e, ok := parseDTSpecial(t, &f); ok {
			return f, e
		}
	}
	return parseDTFields(&dtScanner{s: t}, f)
}

// parseDTSpecial recognises the special words; ok reports that t was one.
func parseDTSpecial(t string, f *dtFields) (e dtErr, ok bool) {
	for _, w := range [...]struct {
		word string
		v    int8
	}{{"infinity", 1}, {"+infinity", 1}, {"-infinity", -1}, {"epoch", 2}} {
		if strings.EqualFold(t, w.word) {
			f.special = w.v
			return dtOK, true
		}
	}
	for _, w := range [...]string{"now", "today", "tomorrow", "yesterday", "allballs"} {
		if strings.EqualFold(t, w) {
			return dtUnsupported, true
		}
	}
	return dtOK, false
}

// parseDTFields parses the date, time, zone and era.
func parseDTFields(p *dtScanner, f dtFields) (dtFields, dtErr) {
	// Date.
	st := p.i
	y := p.digits()
	if p.peek() == '-' && len(y) >= 4 {
		p.i++
		m := p.digits()
		if p.peek() != '-' || len(m) < 1 || len(m) > 2 {
			return f, dtSyntax
		}
		p.i++
		d := p.digits()
		if len(d) < 1 || len(d) > 2 {
			return f, dtSyntax
		}
		f.hasDate = true
		f.year, f.month, f.day = atoi(y), int(atoi(m)), int(atoi(d))
		// Separator before a time.
		save := p.i
		if c := p.peek(); c == 'T' || c == 't' {
			p.i++
			if !isDigit(p.peek()) {
				return f, dtSyntax
			}
		} else if p.skipSpaces() && !isDigit(p.peek()) {
			p.i = save
			p.skipSpaces()
		}
	} else {
		p.i = st
	}
	// Time.
	if isDigit(p.peek()) {
		h := p.digits()
		if len(h) < 1 || len(h) > 2 || p.peek() != ':' {
			return f, dtSyntax
		}
		p.i++
		mi := p.digits()
		if len(mi) != 2 {
			return f, dtSyntax
		}
		var sec, frac int64
		if p.peek() == ':' {
			p.i++
			se := p.digits()
			if len(se) != 2 {
				return f, dtSyntax
			}
			sec = atoi(se)
			if p.peek() == '.' {
				p.i++
				fr := p.digits()
				if fr == "" {
					return f, dtSyntax
				}
				frac = fracMicros(fr)
			}
		}
		hh, mm := atoi(h), atoi(mi)
		if hh > 24 || mm > 59 || sec > 60 {
			return f, dtFieldRange
		}
		f.hasTime = true
		f.tod = hh*3600*usecPerSec + mm*60*usecPerSec + sec*usecPerSec + frac
		if f.tod > usecPerDay {
			return f, dtFieldRange
		}
	}
	if !f.hasDate && !f.hasTime {
		return f, dtSyntax
	}
	// Zone.
	p.skipSpaces()
	switch c := p.peek(); {
	case c == 'Z' || c == 'z':
		p.i++
		f.hasZone = true
	case p.word("UTC"), p.word("GMT"):
		f.hasZone = true
	case (c == '+' || c == '-') && f.hasTime:
		p.i++
		z, e := parseZone(p)
		if e != dtOK {
			return f, e
		}
		if c == '-' {
			z = -z
		}
		f.hasZone, f.zoneEast = true, z
	}
	// Era. There is no year 0; 1 BC is astronomical year 0.
	p.skipSpaces()
	if f.hasDate {
		if f.year == 0 {
			return f, dtFieldRange
		}
		if p.word("BC") {
			f.year = 1 - f.year
		} else {
			p.word("AD")
		}
	}
	if p.i != len(p.s) {
		return f, dtSyntax
	}
	if f.hasDate {
		if f.month < 1 || f.month > 12 || f.day < 1 || f.day > daysIn(f.year, f.month) {
			return f, dtFieldRange
		}
	}
	return f, dtOK
}

// parseZone reads HH, HHMM, HHMMSS, HH:MM or HH:MM:SS after the sign.
func parseZone(p *dtScanner) (int64, dtErr) {
	h := p.digits()
	var hh, mm, ss int64
	switch len(h) {
	case 1, 2:
		hh = atoi(h)
		if p.peek() == ':' {
			p.i++
			m := p.digits()
			if len(m) != 2 {
				return 0, dtSyntax
			}
			mm = atoi(m)
			if p.peek() == ':' {
				p.i++
				s := p.digits()
				if len(s) != 2 {
					return 0, dtSyntax
				}
				ss = atoi(s)
			}
		}
	case 4:
		hh, mm = atoi(h[:2]), atoi(h[2:])
	case 6:
		hh, mm, ss = atoi(h[:2]), atoi(h[2:4]), atoi(h[4:])
	default:
		return 0, dtSyntax
	}
	if mm > 59 || ss > 59 {
		return 0, dtFieldRange
	}
	z := hh*3600 + mm*60 + ss
	if z > maxZoneSeconds {
		return 0, dtZoneRange
	}
	return z, dtOK
}

// fracMicros rounds a fraction of a second (its digits) to microseconds.
func fracMicros(fr string) int64 {
	var us int64
	for i := range 6 {
		us *= 10
		if i < len(fr) {
			us += int64(fr[i] - '0')
		}
	}
	if len(fr) > 6 && fr[6] >= '5' {
		us++
	}
	return us
}

func isLeap(y int64) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y int64, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFrom2000 returns the proleptic Gregorian day number of a date,
// counted from 2000-01-01 (astronomical year numbering).
func daysFrom2000(y int64, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := int64(m + 9)
	if m > 2 {
		mp = int64(m - 3)
	}
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468 - daysUnixTo2000
}

func dtError(e dtErr, typ, s string) error {
	switch e {
	case dtFieldRange:
		return &Error{Msg: `date/time field value out of range: "` + s + `"`}
	case dtZoneRange:
		return &Error{Msg: `time zone displacement out of range: "` + s + `"`}
	case dtUnsupported:
		return &Error{Msg: `invalid input syntax for type ` + typ + `: "` + s +
			`" (now, today, tomorrow, yesterday and allballs are not supported in filters)`}
	}
	return syntaxErr(typ, s)
}

// parseTimestampAs parses a timestamp to microseconds since 2000-01-01
// (UTC for timestamptz; wall clock for timestamp, whose zone is ignored).
func parseTimestampAs(s, typ string, withZone bool) (int64, error) {
	f, e := parseDT(s)
	if e != dtOK {
		return 0, dtError(e, typ, s)
	}
	switch f.special {
	case 1:
		return dtPosInf, nil
	case -1:
		return dtNegInf, nil
	case 2:
		return -daysUnixTo2000 * usecPerDay, nil
	}
	if !f.hasDate {
		return 0, syntaxErr(typ, s)
	}
	if f.year < minYear || f.year > maxTimestampYear {
		return 0, &Error{Msg: `timestamp out of range: "` + s + `"`}
	}
	us := daysFrom2000(f.year, f.month, f.day)*usecPerDay + f.tod
	if withZone {
		us -= f.zoneEast * usecPerSec
	}
	return us, nil
}

func parseTimestamp(s string) (int64, error) {
	return parseTimestampAs(s, "timestamp without time zone", false)
}

func parseTimestamptz(s string) (int64, error) {
	return parseTimestampAs(s, "timestamp with time zone", true)
}

// parseDate parses a date to its day number (a time part is ignored).
func parseDate(s string) (int64, error) {
	f, e := parseDT(s)
	if e != dtOK {
		return 0, dtError(e, "date", s)
	}
	switch f.special {
	case 1:
		return dtPosInf, nil
	case -1:
		return dtNegInf, nil
	case 2:
		return -daysUnixTo2000, nil
	}
	if !f.hasDate {
		return 0, syntaxErr("date", s)
	}
	if f.year < minYear || f.year > maxDateYear {
		return 0, &Error{Msg: `date out of range: "` + s + `"`}
	}
	return daysFrom2000(f.year, f.month, f.day), nil
}

// parseTime parses a time of day to microseconds (date and zone ignored).
func parseTime(s string) (int64, error) {
	f, e := parseDT(s)
	if e != dtOK {
		return 0, dtError(e, "time without time zone", s)
	}
	if f.special != 0 || !f.hasTime {
		return 0, syntaxErr("time without time zone", s)
	}
	return f.tod, nil
}

// timetz is a time with zone; zoneWest is seconds west of UTC, the sign
// PostgreSQL stores.
type timetz struct {
	us       int64
	zoneWest int64
}

// parseTimetz parses a time with an optional zone (UTC when absent).
func parseTimetz(s string) (timetz, error) {
	f, e := parseDT(s)
	if e != dtOK {
		return timetz{}, dtError(e, "time with time zone", s)
	}
	if f.special != 0 || !f.hasTime {
		return timetz{}, syntaxErr("time with time zone", s)
	}
	return timetz{us: f.tod, zoneWest: -f.zoneEast}, nil
}

// cmpTimetz orders like PostgreSQL's timetz_cmp: by the UTC time, then by
// zone, so equal instants in different zones are not equal.
func cmpTimetz(a, b timetz) int {
	if r := cmp.Compare(a.us+a.zoneWest*usecPerSec, b.us+b.zoneWest*usecPerSec); r != 0 {
		return r
	}
	return cmp.Compare(a.zoneWest, b.zoneWest)
}
