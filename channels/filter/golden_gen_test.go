//go:build pggolden

package filter

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openrealtime/realtime/internal/pgcluster"
)

// Value pools per column type: filter values include invalid input on
// purpose; row values are filtered to those PostgreSQL accepts.
var goldenPools = map[string][]string{
	"int2":        {"5", "-3", "40000", "0", "x"},
	"int4":        {"5", "-3", " 7 ", "+2", "0", "2147483647", "abc", "1.5", "05", "-2147483648", "2147483648", ""},
	"int8":        {"9007199254740993", "9007199254740992", "-9223372036854775808", "5", "0", "9223372036854775808"},
	"numeric":     {"10.50", "10.5", "1e3", "1000", "NaN", "Infinity", "-inf", "0.000001", "123456789012345678901234567890.5", "-0", ".5", "5.", "1e-5", "-1E+2", "1.2.3", "999999999999999999", "0.000000000000000001", "1e131072", "nan"},
	"float8":      {"1.5", "NaN", "Infinity", "-Infinity", "-0", "0", "1e308", "0.1", "1e-320", " 2 ", "1e400", "inf", "x", "0.10000000000000001", "1e-400"},
	"float4":      {"0.1", "1.5", "NaN", "3.4e38", "1e-45", "0.100000001", "-inf", "1e39"},
	"bool":        {"t", "f", "true", "false", "yes", "no", "on", "off", "1", "0", "TRUE", " t ", "tr", "maybe", "o"},
	"text":        {"a", "B", "abc", "ab", "", "é", "a%b", "A", "b", "aa", `a\b`, "É", "bé", "a_b", "ba", "Ab", "NULL"},
	"varchar":     {"a", "B", "abc", ""},
	"name":        {"a", "B", "abc"},
	"bpchar":      {"ab", "ab  ", "a", "b ", ""},
	"citext":      {"Bob", "bob", "BOB", "alice", "bOa", "É", "é"},
	"uuid":        {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "{a0eebc999c0b4ef8bb6d6bb9bd380a11}", "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "00000000-0000-0000-0000-000000000000", "xyz", "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11"},
	"timestamptz": {"2024-05-01 10:00:00+00", "2024-05-01T10:00:00+00:00", "2024-05-01 12:00:00+02", "2024-05-01", "2024-05-01 10:00:00", "2024-05-01 10:00:00.5+00", "infinity", "-infinity", "epoch", "1970-01-01 00:00:00+00", "2024-05-01T04:30:00-05:30", "2024-02-30", "0044-03-15 10:00:00+00 BC", "2024-05-01 24:00:00+00", "2024-05-02 00:00:00Z", "2024-05-01 10:00:00+16", "10:00"},
	"timestamp":   {"2024-05-01 10:00:00", "2024-05-01T10:00:00", "2024-05-01 10:00:00+05", "2024-05-01T12:00:00.5", "2024-05-01", "infinity", "2024-13-01"},
	"date":        {"2024-05-01", "2024-04-30", "2024-05-01 10:00", "infinity", "-infinity", "0044-03-15 BC", "epoch", "1970-01-01", "0000-01-01"},
	"time":        {"12:34:56", "12:34", "12:34:56.789", "24:00:00", "00:00", "12:00+02", "12:00:00", "25:00"},
	"timetz":      {"12:00:00+02", "10:00:00+00", "10:00", "12:00-08", "23:59:59.999999+00"},
	"jsonb":       {`{"a":1,"b":[1,2]}`, `{"b": [1, 2], "a": 1.0}`, `[1,2]`, `[2,1]`, `5`, `5.00`, `null`, `"x"`, `"\u00e9"`, `"é"`, `{"a":2}`, `true`, `{a`, `1 2`},
	"json":        {`{"a":1}`, `[1]`},
	"bytea":       {`\x0102ff`, `\x0102FF`, `ab\\c\001`, `\x61625c6301`, `abc`, `\x`, ``, `\xzz`, `a\b`},
	"_int4":       {"{1,2,3}", "{1,NULL}", "{}", "{{1,2},{3,4}}", "{1,2}", "{1,5}", "{01,+2,3}", "{NULL}", "{1,,2}"},
	"_text":       {`{a,b}`, `{"a,b",c}`, `{b}`, `{a}`, `{NULL,a}`},
}

// goldenPGType is the SQL type used for a typname whose name differs.
var goldenPGType = map[string]string{"_int4": "int4[]", "_text": "text[]"}

var goldenLikes = []string{"a%", "%b", "_", "a_", "A%", "%", "", `a\%b`, "é", "b%", "B_", `a\\b`, `a\_b`, "%a%", "_é", "É%", "%%", "a%b%", `\a%`, "ab  ", "b _"}
var goldenRegexes = []string{"^a", "b$", "A", ".", "^$", "a|b", "[A-Z]", "^(a|b)+$", `\d`}

func sqlLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func arrayLiteral(list []string, hasNull bool) string {
	parts := make([]string, 0, len(list)+1)
	for _, e := range list {
		parts = append(parts, `"`+strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(e)+`"`)
	}
	if hasNull {
		parts = append(parts, "NULL")
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// goldenSQL is the expression PostgreSQL evaluates for a case, shaped like
// the real server's realtime.check_equality_op (with bpchar for char(n)).
func goldenSQL(g goldenCase) string {
	typ := g.Type
	if t, ok := goldenPGType[typ]; ok {
		typ = t
	}
	row := "NULL::" + typ
	if !g.RowNull {
		row = sqlLit(g.Row) + "::" + typ
	}
	sym := map[string]string{"eq": "=", "neq": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">=", "like": "LIKE", "ilike": "ILIKE", "match": "~", "imatch": "~*"}
	var e string
	switch g.Op {
	case "in":
		e = fmt.Sprintf("%s = any (%s::%s[])", row, sqlLit(arrayLiteral(g.List, g.InNull)), typ)
	case "isdistinct":
		e = fmt.Sprintf("%s is distinct from %s::%s", row, sqlLit(g.Value), typ)
	case "is":
		e = fmt.Sprintf("%s is %s", row, strings.ToUpper(g.Value))
	case "like", "ilike", "match", "imatch":
		e = fmt.Sprintf("%s %s %s::%s", row, sym[g.Op], sqlLit(g.Value), typ)
	default:
		e = fmt.Sprintf("%s %s %s::%s", row, sym[g.Op], sqlLit(g.Value), typ)
	}
	if g.Not {
		e = "not (" + e + ")"
	}
	return "select (" + e + ")::text"
}

// TestGenerateGolden rewrites goldenFile from a throwaway PostgreSQL 15
// cluster. It is built only with -tags pggolden.
func TestGenerateGolden(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	psql := func(db, script string) []string {
		t.Helper()
		f := filepath.Join(t.TempDir(), "q.sql")
		if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "psql"), c.URL(db), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-f", f)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("psql: %v: %s", err, stderr.String())
		}
		var answers []string
		for _, l := range strings.Split(string(out), "\n") {
			if a, ok := strings.CutPrefix(l, "answer:"); ok {
				answers = append(answers, a)
			}
		}
		return answers
	}
	// Unicode case mapping as on Supabase (C.UTF-8), not the cluster's C.
	psql("", "create database golden template template0 encoding 'UTF8' locale 'C.UTF-8';")
	const ev = "create extension citext;\n" +
		"create function ev(q text) returns text language plpgsql as $f$ declare r text; begin execute q into r; " +
		"return coalesce(r, 'null'); exception when others then return 'error'; end $f$;\n"
	psql("golden", ev)

	types := make([]string, 0, len(goldenPools))
	for k := range goldenPools {
		types = append(types, k)
	}
	slices.Sort(types)
	// Row values PostgreSQL accepts.
	var q strings.Builder
	for _, typ := range types {
		pg := typ
		if p, ok := goldenPGType[typ]; ok {
			pg = p
		}
		for _, v := range goldenPools[typ] {
			q.WriteString("select 'answer:' || ev(" + sqlLit("select "+sqlLit(v)+"::"+pg+"::text") + ");\n")
		}
	}
	lines := psql("golden", q.String())
	rows := map[string][]string{}
	i := 0
	for _, typ := range types {
		for _, v := range goldenPools[typ] {
			if lines[i] != "error" {
				rows[typ] = append(rows[typ], v)
			}
			i++
		}
	}

	rng := rand.New(rand.NewSource(15))
	seen := map[string]bool{}
	var cases []goldenCase
	for len(cases) < 2500 {
		typ := types[rng.Intn(len(types))]
		pool := goldenPools[typ]
		g := goldenCase{Type: typ, Not: rng.Intn(3) == 0, RowNull: rng.Intn(10) == 0}
		g.Row = rows[typ][rng.Intn(len(rows[typ]))]
		ops := []string{"eq", "neq", "lt", "lte", "gt", "gte", "in", "isdistinct", "is"}
		if textLike(typ) {
			ops = append(ops, "like", "ilike", "match", "imatch", "like", "ilike", "match", "imatch")
		}
		g.Op = ops[rng.Intn(len(ops))]
		switch {
		case typ == "json" && g.Op != "is":
			continue // no equality in PostgreSQL; checked by TestCompileErrors
		case typ == "jsonb" && g.Op != "eq" && g.Op != "neq" && g.Op != "in" && g.Op != "isdistinct" && g.Op != "is":
			continue // jsonb ordering is deliberately unsupported
		case typ[0] == '_' && g.Op == "in":
			continue // rejected like the real server, checked by TestCompileErrors
		}
		switch g.Op {
		case "in":
			for range rng.Intn(3) + 1 {
				g.List = append(g.List, pool[rng.Intn(len(pool))])
			}
			g.InNull = rng.Intn(4) == 0
		case "is":
			g.Value = "null"
			if typ == "bool" {
				g.Value = []string{"null", "true", "false", "unknown"}[rng.Intn(4)]
			}
		case "like", "ilike":
			g.Value = goldenLikes[rng.Intn(len(goldenLikes))]
		case "match", "imatch":
			g.Value = goldenRegexes[rng.Intn(len(goldenRegexes))]
		default:
			g.Value = pool[rng.Intn(len(pool))]
		}
		key, _ := json.Marshal(g)
		if seen[string(key)] {
			continue
		}
		seen[string(key)] = true
		cases = append(cases, g)
	}
	q.Reset()
	for _, g := range cases {
		q.WriteString("select 'answer:' || ev(" + sqlLit(goldenSQL(g)) + ");\n")
	}
	lines = psql("golden", q.String())
	if len(lines) != len(cases) {
		t.Fatalf("%d answers for %d cases", len(lines), len(cases))
	}
	var out strings.Builder
	for i, g := range cases {
		g.PG = lines[i]
		b, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(b)
		out.WriteByte('\n')
	}
	if err := os.MkdirAll(filepath.Dir(goldenFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goldenFile, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d cases to %s", len(cases), goldenFile)
}
