package realtime

import (
	"strconv"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/internal/jsonw"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// encoder frames hub messages for one serializer version. There are exactly
// two values, so the hub's per-encoder caches stay tiny.
type encoder struct {
	v phoenix.Version
}

var (
	encV1 = &encoder{v: phoenix.V1}
	encV2 = &encoder{v: phoenix.V2}
)

func encoderFor(v phoenix.Version) *encoder {
	if v == phoenix.V1 {
		return encV1
	}
	return encV2
}

// text frames one server message.
func (e *encoder) text(joinRef, ref, topic, event string, payload []byte) channels.Frame {
	return channels.Frame{Data: phoenix.AppendText(make([]byte, 0, len(payload)+len(topic)+len(event)+48), e.v, joinRef, ref, topic, event, payload)}
}

// EncodeBroadcast implements channels.Encoder (docs/protocol.md §5.1–5.3).
func (e *encoder) EncodeBroadcast(topic string, b *channels.Broadcast) (channels.Frame, bool) {
	if b.Verbatim != nil {
		return e.text("", "", topic, "broadcast", b.Verbatim), true
	}
	if e.v == phoenix.V2 {
		enc := phoenix.EncodingJSON
		if b.Binary {
			enc = phoenix.EncodingBinary
		}
		data, err := phoenix.AppendBroadcast(make([]byte, 0, 5+len(topic)+len(b.Event)+len(b.Meta)+len(b.Payload)), topic, b.Event, b.Meta, enc, b.Payload)
		if err == nil {
			return channels.Frame{Data: data, Binary: true}, true
		}
		if b.Binary {
			return channels.Frame{}, false
		}
		// Names too long for the binary header: fall back to a JSON frame.
	}
	if b.Binary {
		return channels.Frame{}, false
	}
	return e.text("", "", topic, "broadcast", broadcastObject(b)), true
}

// broadcastObject is the JSON form {"type":"broadcast","event":…,"payload":…[,"meta":…]}.
func broadcastObject(b *channels.Broadcast) []byte {
	buf := make([]byte, 0, len(b.Payload)+len(b.Event)+64)
	buf = append(buf, `{"type":"broadcast",`...)
	return append(appendBroadcastFields(buf, b), '}')
}

// appendBroadcastFields appends the members every broadcast object has,
// whatever the transport: "event":…,"payload":…[,"meta":…]. An empty
// payload is written as {}.
func appendBroadcastFields(dst []byte, b *channels.Broadcast) []byte {
	dst = append(dst, `"event":`...)
	dst = jsonw.AppendString(dst, b.Event)
	dst = append(dst, `,"payload":`...)
	if len(b.Payload) == 0 {
		dst = append(dst, "{}"...)
	} else {
		dst = append(dst, b.Payload...)
	}
	if len(b.Meta) > 0 {
		dst = append(dst, `,"meta":`...)
		dst = append(dst, b.Meta...)
	}
	return dst
}

// EncodePresenceDiff implements channels.Encoder.
func (e *encoder) EncodePresenceDiff(topic string, diff []byte) channels.Frame {
	return e.text("", "", topic, "presence_diff", diff)
}

// EncodeSystem implements channels.Encoder.
func (e *encoder) EncodeSystem(topic string, payload []byte) channels.Frame {
	return e.text("", "", topic, "system", payload)
}

// EncodePostgresChange implements channels.Encoder (docs/protocol.md §4.1).
func (e *encoder) EncodePostgresChange(topic string, ids []int64, data []byte, _ channels.Cursor) channels.Frame {
	// One buffer for the whole frame: the payload is written in place.
	buf := make([]byte, 0, len(data)+len(topic)+80+12*len(ids))
	buf = phoenix.AppendTextHead(buf, e.v, "", "", topic, "postgres_changes")
	buf = append(buf, `{"ids":[`...)
	for i, id := range ids {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendInt(buf, id, 10)
	}
	buf = append(buf, `],"data":`...)
	buf = append(buf, data...)
	buf = append(buf, '}')
	return channels.Frame{Data: phoenix.AppendTextTail(buf, e.v, "")}
}
