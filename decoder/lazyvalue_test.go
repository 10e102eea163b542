package decoder

import (
	"bytes"
	"strings"
	"testing"
)

// rowValues renders values up to LazyRenderBytes at once and leaves larger
// ones to RenderedJSON, which gives the same bytes.
func TestRowValuesLazyRender(t *testing.T) {
	text := &TypeInfo{OID: 25, Name: "text", Kind: 'b', Category: 'S'}
	jsonb := &TypeInfo{OID: oidJSONB, Name: "jsonb", Kind: 'b', Category: 'U'}
	e := &relEntry{
		rel:   &Relation{Schema: "public", Table: "t", Columns: []Column{{Name: "small"}, {Name: "big"}, {Name: "doc"}}},
		types: []*TypeInfo{text, text, jsonb},
	}
	big := strings.Repeat("é\"\n", LazyRenderBytes/3+1)
	doc := `{"k": "` + strings.Repeat("v", LazyRenderBytes) + `"}`
	vals, err := rowValues(e, []tupleColumn{{kind: 't', data: []byte("hi")}, {kind: 't', data: []byte(big)}, {kind: 't', data: []byte(doc)}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if string(vals[0].JSON) != `"hi"` {
		t.Fatalf("small value: JSON %q", vals[0].JSON)
	}
	for i, want := range [][]byte{Render(big, text), Render(doc, jsonb)} {
		v := vals[i+1]
		if v.JSON != nil {
			t.Fatalf("column %d (%d bytes) rendered at decode", i+1, len(v.Text))
		}
		if got := v.RenderedJSON(); !bytes.Equal(got, want) {
			t.Fatalf("column %d: lazy rendering differs from Render", i+1)
		}
		// Copies share one rendering, made once even when asked for
		// concurrently (the replay window and the fan-out share values).
		renders := make(chan []byte, 4)
		for range 4 {
			c := v
			go func() { renders <- c.RenderedJSON() }()
		}
		first := <-renders
		for range 3 {
			if r := <-renders; &r[0] != &first[0] {
				t.Fatalf("column %d rendered more than once", i+1)
			}
		}
		if v.JSONLen() < len(v.Text) {
			t.Fatalf("column %d: JSONLen %d under the text's %d", i+1, v.JSONLen(), len(v.Text))
		}
	}
}
