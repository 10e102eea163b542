package channels

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/openrealtime/realtime/decoder"
)

// A value over decoder.LazyRenderBytes is rendered when a change is
// encoded for a subscriber, the same as an eagerly rendered one, and left
// out (Error 413) under the size limit without being rendered.
func TestEncodeChangeLazyValue(t *testing.T) {
	info := &TableInfo{PrimaryKey: []string{"id"}}
	all := []int{0, 1, 2, 3}
	big := strings.Repeat(`a"b\`+"\n", decoder.LazyRenderBytes/4+1)
	lazy := decoder.TextValue(big, nil)
	if lazy.JSON != nil {
		t.Fatalf("value of %d bytes rendered at decode", len(big))
	}
	ch := decoder.Change{Kind: decoder.Insert, Rel: todosRel, New: []decoder.Value{intVal(1), val("o"), lazy, val("s")}}
	got := encodeChange(&ch, all, info, 1<<20)
	var msg struct {
		Record map[string]any `json:"record"`
	}
	if err := json.Unmarshal(got, &msg); err != nil {
		t.Fatalf("encoded change is not JSON: %v", err)
	}
	if msg.Record["title"] != big {
		t.Fatalf("large title did not round-trip (got %d bytes)", len(msg.Record["title"].(string)))
	}
	got = encodeChange(&ch, all, info, 1000)
	if s := string(got); !strings.Contains(s, `"record":{"id":1,"owner":"o","secret":"s"}`) || !strings.Contains(s, "Error 413") {
		t.Fatalf("over the limit: %.300s", s)
	}
	// The replay window counts a lazy value by its text, at least.
	if n := changeSize(&ch); n < 2*len(big) {
		t.Fatalf("changeSize %d for a %d-byte value", n, len(big))
	}
}
