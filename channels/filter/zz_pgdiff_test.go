package filter

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"testing"
)

type dcase struct {
	typ, pgtyp string
	op         Op
	neg        bool
	val        string
	list       []string
	hasNull    bool
	row        string
	rowNull    bool
}

func lit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func arrLit(list []string, hasNull bool) string {
	var parts []string
	for _, e := range list {
		parts = append(parts, `"`+strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(e)+`"`)
	}
	if hasNull {
		parts = append(parts, "NULL")
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func (c dcase) sql() string {
	row := "NULL::" + c.pgtyp
	if !c.rowNull {
		row = lit(c.row) + "::" + c.pgtyp
	}
	var e string
	sym := map[Op]string{OpEq: "=", OpNeq: "!=", OpLt: "<", OpLte: "<=", OpGt: ">", OpGte: ">=", OpLike: "LIKE", OpILike: "ILIKE", OpMatch: "~", OpIMatch: "~*"}
	switch c.op {
	case OpIn:
		e = fmt.Sprintf("%s = any (%s::%s[])", row, lit(arrLit(c.list, c.hasNull)), c.pgtyp)
	case OpIsDistinct:
		e = fmt.Sprintf("%s is distinct from %s::%s", row, lit(c.val), c.pgtyp)
	case OpLike, OpILike, OpMatch, OpIMatch:
		e = fmt.Sprintf("%s %s %s::text", row, sym[c.op], lit(c.val))
	default:
		e = fmt.Sprintf("%s %s %s::%s", row, sym[c.op], lit(c.val), c.pgtyp)
	}
	if c.neg {
		e = "not (" + e + ")"
	}
	return "select (" + e + ")::text"
}

var pools = map[string][]string{
	"int4":        {"5", "-3", " 7 ", "+2", "0", "2147483647", "abc", "1.5", "05", "-2147483648", "2147483648"},
	"int8":        {"9007199254740993", "9007199254740992", "-9223372036854775808", "5", "0"},
	"numeric":     {"10.50", "10.5", "1e3", "1000", "NaN", "Infinity", "-inf", "0.000001", "123456789012345678901234567890.5", "-0", ".5", "5.", "1e-5", "-1E+2", "1.2.3", "999999999999999999", "0.000000000000000001"},
	"float8":      {"1.5", "NaN", "Infinity", "-Infinity", "-0", "0", "1e308", "0.1", "1e-320", " 2 ", "1e400", "inf", "x", "0.10000000000000001"},
	"float4":      {"0.1", "1.5", "NaN", "3.4e38", "1e-45", "0.100000001", "-inf"},
	"bool":        {"t", "f", "true", "false", "yes", "no", "on", "off", "1", "0", "TRUE", " t ", "tr", "maybe"},
	"text":        {"a", "B", "abc", "ab", "", "é", "a%b", "A", "b", "aa", `a\b`, "É", "bé", "a_b", "ba", "Ab"},
	"bpchar":      {"ab", "ab  ", "a", "b ", ""},
	"citext":      {"Bob", "bob", "BOB", "alice", "bOa"},
	"uuid":        {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "{a0eebc999c0b4ef8bb6d6bb9bd380a11}", "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "00000000-0000-0000-0000-000000000000", "xyz"},
	"timestamptz": {"2024-05-01 10:00:00+00", "2024-05-01T10:00:00+00:00", "2024-05-01 12:00:00+02", "2024-05-01", "2024-05-01 10:00:00", "2024-05-01 10:00:00.5+00", "infinity", "-infinity", "epoch", "1970-01-01 00:00:00+00", "2024-05-01T04:30:00-05:30", "2024-02-30", "0044-03-15 10:00:00+00 BC", "2024-05-01 24:00:00+00", "2024-05-02 00:00:00Z"},
	"timestamp":   {"2024-05-01 10:00:00", "2024-05-01T10:00:00", "2024-05-01 10:00:00+05", "2024-05-01T12:00:00.5", "2024-05-01", "infinity"},
	"date":        {"2024-05-01", "2024-04-30", "2024-05-01 10:00", "infinity", "-infinity", "0044-03-15 BC", "epoch", "1970-01-01"},
	"time":        {"12:34:56", "12:34", "12:34:56.789", "24:00:00", "00:00", "12:00+02", "12:00:00"},
	"timetz":      {"12:00:00+02", "10:00:00+00", "10:00", "12:00-08", "23:59:59.999999+00"},
	"jsonb":       {`{"a":1,"b":[1,2]}`, `{"b": [1, 2], "a": 1.0}`, `[1,2]`, `[2,1]`, `5`, `5.00`, `null`, `"x"`, `"\u00e9"`, `"é"`, `{"a":2}`, `true`, `{a`},
	"bytea":       {`\x0102ff`, `\x0102FF`, `ab\\c\001`, `\x61625c6301`, `abc`, `\x`, ``},
	"_int4":       {"{1,2,3}", "{1,NULL}", "{}", "{{1,2},{3,4}}", "{1,2}", "{1,5}", "{01,+2,3}", "{NULL}"},
	"_text":       {`{a,b}`, `{"a,b",c}`, `{b}`, `{a}`, `{NULL,a}`},
}

var pgType = map[string]string{"_int4": "int4[]", "_text": "text[]"}

func TestPGDiff(t *testing.T) {
	if os.Getenv("PGDIFF") == "" {
		t.Skip()
	}
	rng := rand.New(rand.NewSource(int64(len(os.Getenv("PGDIFF")))))
	var cases []dcase
	types := []string{}
	for k := range pools {
		types = append(types, k)
	}
	ops := []Op{OpEq, OpNeq, OpLt, OpLte, OpGt, OpGte, OpIn, OpIsDistinct}
	for i := 0; i < 30000; i++ {
		typ := types[rng.Intn(len(types))]
		pool := pools[typ]
		op := ops[rng.Intn(len(ops))]
		if textLike(typ) && rng.Intn(3) == 0 {
			op = []Op{OpLike, OpILike, OpMatch, OpIMatch}[rng.Intn(4)]
		}
		if typ == "jsonb" && op != OpEq && op != OpNeq && op != OpIn && op != OpIsDistinct {
			continue
		}
		if op == OpIn && typ[0] == '_' {
			continue
		}
		pg := typ
		if p, ok := pgType[typ]; ok {
			pg = p
		}
		c := dcase{typ: typ, pgtyp: pg, op: op, neg: rng.Intn(3) == 0, val: pool[rng.Intn(len(pool))], row: pool[rng.Intn(len(pool))], rowNull: rng.Intn(10) == 0}
		if op == OpLike || op == OpILike {
			likes := []string{"a%", "%b", "_", "a_", "A%", "%", "", `a\%b`, "é", "b%", "B_", `a\\b`, `a\_b`, "%a%", "_é", "É%", "%%", "a%b%", `\a%`, "ab  ", "b _"}
			c.val = likes[rng.Intn(len(likes))]
		}
		if op == OpMatch || op == OpIMatch {
			c.val = []string{"^a", "b$", "A", ".", "^$", "a|b", "[A-Z]"}[rng.Intn(7)]
		}
		if op == OpIn {
			n := rng.Intn(3)
			for j := 0; j <= n; j++ {
				c.list = append(c.list, pool[rng.Intn(len(pool))])
			}
			c.hasNull = rng.Intn(4) == 0
		}
		cases = append(cases, c)
	}
	var sb strings.Builder
	sb.WriteString("create or replace function pg_temp.ev(q text) returns text language plpgsql as $f$ declare r text; begin execute q into r; return coalesce(r, 'NULL'); exception when others then return 'ERR:' || sqlerrm; end $f$;\n")
	for _, c := range cases {
		sb.WriteString("select pg_temp.ev(" + lit(c.sql()) + ");\n")
	}
	os.WriteFile("/tmp/fpg/diff.sql", []byte(sb.String()), 0o644)
	out, err := exec.Command("runuser", "-u", "postgres", "--", "psql", "-h", "/tmp/fpg", "-p", "55439", "-U", "postgres", "-X", "-A", "-t", "-q", "-f", "/tmp/fpg/diff.sql").CombinedOutput()
	if err != nil {
		t.Fatal(err, string(out))
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != len(cases) {
		t.Fatalf("got %d lines for %d cases: %s", len(lines), len(cases), lines[:3])
	}
	bad := 0
	stats := map[string]int{}
	msgs := map[string]int{}
	for i, c := range cases {
		pgres := lines[i]
		cond := Condition{Column: "c", Op: c.op, Negate: c.neg, Value: c.val, List: c.list, NullInList: c.hasNull}
		f, err := Compile([]Condition{cond}, map[string]Column{"c": {Type: c.typ, Selectable: true}})
		var ours string
		if err != nil {
			ours = "ERR:" + err.Error()
		} else {
			v := Value{Null: c.rowNull, Text: c.row}
			if f.Match(testRow{"c": v}) {
				ours = "true"
			} else {
				ours = "false"
			}
		}
		stats["pg:"+strings.SplitN(pgres, ":", 2)[0]+" ours:"+strings.SplitN(ours, ":", 2)[0]]++
		pgErr := strings.HasPrefix(pgres, "ERR:")
		ourErr := strings.HasPrefix(ours, "ERR:")
		ok := true
		switch {
		case pgErr && ourErr:
			if pgres != ours && !rowBad(c) {
				msgs[pgres+" || "+ours]++
			}
		case pgErr != ourErr:
			// PG errors on bad row values too; ours fails closed.
			ok = pgErr && ours == "false" && rowBad(c)
		default:
			ok = (pgres == "true") == (ours == "true")
		}
		if !ok {
			bad++
			if bad < 60 {
				t.Errorf("%s %s neg=%v val=%q list=%q null=%v row=%q rownull=%v: pg=%s ours=%s", c.typ, c.op, c.neg, c.val, c.list, c.hasNull, c.row, c.rowNull, pgres, ours)
			}
		}
	}
	for m := range msgs {
		t.Log(m)
	}
	t.Logf("%d cases, %d mismatches %v", len(cases), bad, stats)
}

func rowBad(c dcase) bool {
	if c.rowNull {
		return false
	}
	_, err := typeFor(c.typ).(interface{ sqlName() string }), error(nil)
	_ = err
	conds := []Condition{{Column: "c", Op: OpEq, Value: c.row}}
	_, e := Compile(conds, map[string]Column{"c": {Type: c.typ, Selectable: true}})
	return e != nil
}
