package channels

import (
	"bytes"
	"encoding/json"
	"hash/fnv"
)

// Binding is one postgres_changes entry of a join: which changes a channel
// wants, as the client asked. Bindings are immutable after the join.
type Binding struct {
	// ID is the positive id echoed in the join reply and listed in `ids`.
	ID int64
	// Event is "*", "INSERT", "UPDATE" or "DELETE" (upper case).
	Event string
	// Schema and Table name what to watch; "*" is a wildcard.
	Schema, Table string
	// FilterText is the filter as the client sent it.
	FilterText string
	// Select restricts the payload to these columns plus the primary key;
	// nil means every column.
	Select []string
	// Raw is the client's binding object, echoed verbatim in the join reply.
	Raw json.RawMessage

	spec *bindingSpec // parse result; nil for bindings not made by Bind
}

// BindingID is the id of a binding request: a positive 27-bit hash of its
// compact JSON, so identical requests get identical ids, as on the real
// server.
func BindingID(raw json.RawMessage) int64 { return bindingID(raw) }

func bindingID(raw json.RawMessage) int64 {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		buf.Reset()
		buf.Write(raw)
	}
	h := fnv.New32a()
	h.Write(buf.Bytes())
	id := int64(h.Sum32() & (1<<27 - 1))
	if id == 0 {
		id = 1
	}
	return id
}
