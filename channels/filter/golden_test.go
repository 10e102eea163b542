package filter

import (
	"bufio"
	"encoding/json"
	"os"
	"testing"
)

// goldenFile holds conditions evaluated by PostgreSQL 15 itself; regenerate
// it with `go test -tags pggolden -run TestGenerateGolden ./channels/filter/`
// (see golden_gen_test.go).
const goldenFile = "testdata/pg15_semantics.jsonl"

// goldenCase is one condition on one value, with PostgreSQL's verdict.
type goldenCase struct {
	Type    string   `json:"type"`           // pg_type.typname of the column
	Op      string   `json:"op"`             // wire operator name
	Not     bool     `json:"not,omitempty"`  // the not. prefix
	Value   string   `json:"value"`          // filter value (non-in operators)
	List    []string `json:"list,omitempty"` // in: non-NULL elements
	InNull  bool     `json:"in_null,omitempty"`
	Row     string   `json:"row"`
	RowNull bool     `json:"row_null,omitempty"`
	// PG is what PostgreSQL answered: "true", "false", "null" (unknown) or
	// "error" (the filter value or operator is rejected; row values in the
	// file are always valid for their type).
	PG string `json:"pg"`
}

func (g goldenCase) condition() Condition {
	op, _ := opByName(g.Op)
	return Condition{Column: "c", Op: op, Negate: g.Not, Value: g.Value, List: g.List, NullInList: g.InNull}
}

// ours evaluates the case with this package, in the same vocabulary.
func (g goldenCase) ours() string {
	f, err := Compile([]Condition{g.condition()}, map[string]Column{"c": {Type: g.Type, Selectable: true}})
	if err != nil {
		return "error"
	}
	switch f.conds[0].eval(Value{Null: g.RowNull, Text: g.Row}) {
	case triTrue:
		return "true"
	case triFalse:
		return "false"
	}
	return "null"
}

// TestPostgresSemantics replays conditions PostgreSQL 15 evaluated: every
// verdict, including SQL NULL (unknown) and rejected values, must agree.
func TestPostgresSemantics(t *testing.T) {
	fh, err := os.Open(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	n, verdicts := 0, map[string]int{}
	for sc.Scan() {
		var g goldenCase
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		n++
		verdicts[g.PG]++
		if got := g.ours(); got != g.PG {
			t.Errorf("line %d: %s %s not=%v value=%q list=%q in_null=%v row=%q row_null=%v: PostgreSQL %s, filter %s",
				n, g.Type, g.Op, g.Not, g.Value, g.List, g.InNull, g.Row, g.RowNull, g.PG, got)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	// Guard against an empty or one-sided file.
	for _, v := range []string{"true", "false", "null", "error"} {
		if verdicts[v] < 50 {
			t.Fatalf("golden file has only %d %q verdicts (of %d cases)", verdicts[v], v, n)
		}
	}
}
