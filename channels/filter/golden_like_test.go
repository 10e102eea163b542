package filter

import (
	"bufio"
	"encoding/json"
	"os"
	"testing"
)

// likeGoldenFile holds random LIKE/ILIKE conditions evaluated by PostgreSQL
// 15; regenerate it with
// `go test -tags pggolden -run TestGenerateLikeGolden ./channels/filter/`
// (see golden_like_gen_test.go).
const likeGoldenFile = "testdata/pg15_like.jsonl"

// TestPostgresLikeSemantics replays LIKE and ILIKE verdicts of PostgreSQL 15
// (wildcards, escapes, case folding beyond ASCII) against the linear-time
// matcher. A pattern ending in an unpaired escape is refused at Compile
// (PostgreSQL complains only when matching reaches it), so the file has none.
func TestPostgresLikeSemantics(t *testing.T) {
	fh, err := os.Open(likeGoldenFile)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	n, verdicts := 0, map[string]int{}
	for sc.Scan() {
		var g goldenCase
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		n++
		verdicts[g.PG]++
		if got := g.ours(); got != g.PG {
			t.Errorf("line %d: %s %s not=%v pattern=%q row=%q: PostgreSQL %s, filter %s",
				n, g.Type, g.Op, g.Not, g.Value, g.Row, g.PG, got)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"true", "false"} {
		if verdicts[v] < 50 {
			t.Fatalf("golden file has only %d %q verdicts (of %d cases)", verdicts[v], v, n)
		}
	}
}
