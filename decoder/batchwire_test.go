package decoder

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func wireBatch() []Change {
	rel := &Relation{OID: 42, Schema: "public", Table: "todos", ReplicaIdentity: 'd', Columns: []Column{
		{Name: "id", Type: "int8", TypeOID: 20, Key: true},
		{Name: "title", Type: "text", TypeOID: 25},
		{Name: "doc", Type: "jsonb", TypeOID: 3802},
	}}
	other := &Relation{OID: 7, Schema: "realtime", Table: "messages", ReplicaIdentity: 'f', Columns: []Column{{Name: "topic", Type: "text", TypeOID: 25}}}
	at := time.Date(2026, 12, 5, 10, 0, 0, 123456789, time.UTC)
	big := strings.Repeat("x", LazyRenderBytes+1)
	return []Change{
		{Kind: Insert, Rel: rel, CommitTime: at, Position: 100, New: []Value{
			{Text: "1", JSON: []byte("1")}, {Text: "a\"b", JSON: []byte(`"a\"b"`)}, {Null: true, JSON: []byte("null")},
		}},
		{Kind: Update, Rel: rel, CommitTime: at, Position: 100, New: []Value{
			{Text: "1", JSON: []byte("1")}, TextValue(big, BuiltinType("text")), {Absent: true},
		}, Old: []Value{{Text: "1", JSON: []byte("1")}, {Absent: true}, {Absent: true}}},
		{Kind: Delete, Rel: other, CommitTime: at.Add(time.Second), Position: 200, Old: []Value{{Text: "t", JSON: []byte(`"t"`)}}},
	}
}

func TestBatchWireRoundTrip(t *testing.T) {
	in := wireBatch()
	b := AppendBatch(nil, in, nil)
	if !bytes.Equal(b, AppendBatch(nil, wireBatch(), nil)) {
		t.Fatal("encoding is not deterministic")
	}
	var announced []string
	d := &BatchDecoder{
		TypeOf:     func(oid uint32) (*TypeInfo, error) { return BuiltinType("text"), nil },
		OnRelation: func(r *Relation) { announced = append(announced, r.Table) },
	}
	out, err := d.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("decoded %d changes, want %d", len(out), len(in))
	}
	for i := range in {
		a, o := in[i], out[i]
		if a.Kind != o.Kind || a.Position != o.Position || !a.CommitTime.Equal(o.CommitTime) || !reflect.DeepEqual(*a.Rel, *o.Rel) {
			t.Errorf("change %d: got %+v, want %+v", i, o, a)
		}
		for _, pair := range [][2][]Value{{a.New, o.New}, {a.Old, o.Old}} {
			if (pair[0] == nil) != (pair[1] == nil) || len(pair[0]) != len(pair[1]) {
				t.Fatalf("change %d: image %v decoded as %v", i, pair[0], pair[1])
			}
			for j := range pair[0] {
				w, g := pair[0][j], pair[1][j]
				if w.Absent != g.Absent || w.Null != g.Null || w.Text != g.Text || !bytes.Equal(w.RenderedJSON(), g.RenderedJSON()) {
					t.Errorf("change %d value %d: got %+v, want %+v", i, j, g, w)
				}
			}
		}
	}
	if out[0].Rel != out[1].Rel {
		t.Error("changes of one table do not share their relation")
	}
	if out[1].New[1].JSON != nil {
		t.Error("a value over LazyRenderBytes was rendered at decoding")
	}
	if !reflect.DeepEqual(announced, []string{"todos", "messages"}) {
		t.Errorf("relations announced %v", announced)
	}
	// The same definitions again are not announced; a changed one is.
	again, err := d.Decode(b)
	if err != nil || again[0].Rel != out[0].Rel || len(announced) != 2 {
		t.Fatalf("second decode: err %v, shared %v, announced %v", err, again[0].Rel == out[0].Rel, announced)
	}
	changed := wireBatch()
	changed[0].Rel.Columns[1].Name = "name"
	if _, err := d.Decode(AppendBatch(nil, changed[:1], nil)); err != nil || len(announced) != 3 {
		t.Fatalf("changed relation: err %v, announced %v", err, announced)
	}
	// An unchanged relation the source announced anew is reported again.
	mark := func(r *Relation) bool { return r.Table == "messages" }
	if _, err := d.Decode(AppendBatch(nil, wireBatch()[2:], mark)); err != nil || len(announced) != 4 || announced[3] != "messages" {
		t.Fatalf("announced relation: err %v, announced %v", err, announced)
	}
}

func TestBatchWireRejectsCorruption(t *testing.T) {
	b := AppendBatch(nil, wireBatch(), nil)
	for cut := 0; cut < len(b); cut += 1 + cut/8 {
		if _, err := new(BatchDecoder).Decode(b[:cut]); !errors.Is(err, errBatchWire) {
			t.Fatalf("truncated at %d of %d: err %v", cut, len(b), err)
		}
	}
	if _, err := new(BatchDecoder).Decode(append(b, 0)); !errors.Is(err, errBatchWire) {
		t.Fatalf("trailing byte: err %v", err)
	}
	bad := append([]byte{9}, b[1:]...)
	if _, err := new(BatchDecoder).Decode(bad); !errors.Is(err, errBatchWire) {
		t.Fatalf("bad version: err %v", err)
	}
}
