package channels

import (
	"encoding/json"
)

// Binding is one postgres_changes entry of a join: which changes a channel
// wants. Bindings are immutable after the join.
type Binding struct {
	// ID is the positive id echoed in the join reply and listed in `ids`.
	ID int64
	// Event is "*", "INSERT", "UPDATE" or "DELETE" (upper case).
	Event string
	// Schema and Table name what to watch; "*" is a wildcard.
	Schema, Table string
	// Filter is the compiled filter; nil matches every row.
	Filter any // TEMP
	// FilterText is the filter as the client sent it.
	FilterText string
	// Select restricts the payload to these columns plus the primary key;
	// nil means every column.
	Select []string
	// Raw is the client's binding object, echoed verbatim in the join reply.
	Raw json.RawMessage
}
