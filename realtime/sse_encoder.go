package realtime

import (
	"bytes"

	"github.com/openrealtime/realtime/channels"
)

// sseEncoder frames hub messages as Server-Sent Events (docs/sse.md).
type sseEncoder struct{}

var encSSE = &sseEncoder{}

// sseEvent builds one event: optional id, the event name, and data lines.
// JSON is compact, but a json (not jsonb) column may hold raw newlines, so
// every newline starts a new data line, as the SSE format requires.
func sseEvent(id, event string, data []byte) channels.Frame {
	b := make([]byte, 0, len(data)+len(event)+len(id)+24)
	if id != "" {
		b = append(b, "id: "...)
		b = append(b, id...)
		b = append(b, '\n')
	}
	b = append(b, "event: "...)
	b = append(b, event...)
	b = append(b, "\ndata: "...)
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			b = append(b, data...)
			break
		}
		b = append(b, data[:i]...)
		b = append(b, "\ndata: "...)
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	return channels.Frame{Data: append(b, '\n', '\n')}
}

// EncodeBroadcast implements channels.Encoder: {"event":…,"payload":…}.
// Binary payloads cannot be carried and are not delivered.
func (sseEncoder) EncodeBroadcast(_ string, b *channels.Broadcast) (channels.Frame, bool) {
	if b.Binary {
		return channels.Frame{}, false
	}
	d := make([]byte, 0, len(b.Payload)+len(b.Event)+32)
	d = appendBroadcastFields(append(d, '{'), b)
	return sseEvent("", "broadcast", append(d, '}')), true
}

// EncodePresenceDiff implements channels.Encoder.
func (sseEncoder) EncodePresenceDiff(_ string, diff []byte) channels.Frame {
	return sseEvent("", "presence_diff", diff)
}

// EncodePostgresChange implements channels.Encoder: the data object itself,
// with the change's cursor as the event id.
func (sseEncoder) EncodePostgresChange(_ string, _ []int64, data []byte, cursor channels.Cursor) channels.Frame {
	return sseEvent(cursor.String(), "postgres_changes", data)
}

// EncodeSystem implements channels.Encoder.
func (sseEncoder) EncodeSystem(_ string, payload []byte) channels.Frame {
	return sseEvent("", "system", payload)
}
