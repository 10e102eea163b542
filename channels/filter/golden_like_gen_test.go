//go:build pggolden

package filter

import (
	"context"
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openrealtime/realtime/internal/pgcluster"
)

// likeAlphabet is what random LIKE patterns and values are made of: the
// wildcards, the escape, letters that repeat (to provoke overlaps and
// backtracking) and letters whose case folds outside ASCII.
var (
	likePatAlphabet = []string{"%", "%", "_", `\`, "a", "a", "b", "A", "é", "É", "ß"}
	likeValAlphabet = []string{"a", "a", "a", "b", "A", "B", "é", "É", "ß", "%", "_", `\`}
)

// trailingEscape reports whether p ends with an unpaired backslash.
func trailingEscape(p string) bool {
	n := 0
	for n < len(p) && p[len(p)-1-n] == '\\' {
		n++
	}
	return n%2 == 1
}

func randomFrom(rng *rand.Rand, alphabet []string, maxLen int) string {
	var b strings.Builder
	for range rng.Intn(maxLen + 1) {
		b.WriteString(alphabet[rng.Intn(len(alphabet))])
	}
	return b.String()
}

// TestGenerateLikeGolden rewrites likeGoldenFile: random LIKE and ILIKE
// patterns on text and citext values, evaluated by PostgreSQL 15 in a UTF-8
// database (C.UTF-8). Built only with -tags pggolden.
func TestGenerateLikeGolden(t *testing.T) {
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
	psql("", "create database golden template template0 encoding 'UTF8' locale 'C.UTF-8';")
	psql("golden", "create extension citext;\n"+
		"create function ev(q text) returns text language plpgsql as $f$ declare r text; begin execute q into r; "+
		"return coalesce(r, 'null'); exception when others then return 'error'; end $f$;\n")

	rng := rand.New(rand.NewSource(13))
	seen := map[string]bool{}
	var cases []goldenCase
	for len(cases) < 4000 {
		g := goldenCase{Type: []string{"text", "text", "citext"}[rng.Intn(3)], Op: []string{"like", "ilike"}[rng.Intn(2)]}
		g.Not = rng.Intn(5) == 0
		g.Value = randomFrom(rng, likePatAlphabet, 8)
		if trailingEscape(g.Value) {
			// PostgreSQL complains only if matching reaches the dangling
			// escape; the filter refuses such a pattern at subscribe time
			// (TestCompileErrors), so it is no use comparing here.
			g.Value += "a"
		}
		g.Row = randomFrom(rng, likeValAlphabet, 10)
		if rng.Intn(3) == 0 {
			// Make a value the pattern is likely to match.
			g.Row = strings.NewReplacer("%", "aa", "_", "b", `\`, "").Replace(g.Value)
		}
		key, _ := json.Marshal(g)
		if seen[string(key)] {
			continue
		}
		seen[string(key)] = true
		cases = append(cases, g)
	}
	var q strings.Builder
	for _, g := range cases {
		q.WriteString("select 'answer:' || ev(" + sqlLit(goldenSQL(g)) + ");\n")
	}
	lines := psql("golden", q.String())
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
	if err := os.WriteFile(likeGoldenFile, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d cases to %s", len(cases), likeGoldenFile)
}
