package phoenix

import (
	"errors"
	"fmt"
)

// Binary frame kinds of vsn 2.0.0.
const (
	// KindPush is a Phoenix binary push (kind 0): what Phoenix's own JS
	// client sends for a push whose payload is an ArrayBuffer.
	KindPush = 0
	// KindUserBroadcastPush is a broadcast pushed by a client (kind 3).
	KindUserBroadcastPush = 3
	// KindUserBroadcast is a broadcast delivered to a client (kind 4).
	KindUserBroadcast = 4
)

// Payload encodings carried in binary broadcast frames.
const (
	// EncodingBinary marks a raw byte payload.
	EncodingBinary byte = 0
	// EncodingJSON marks a JSON text payload.
	EncodingJSON byte = 1
)

// ErrFieldTooLong is returned when a string does not fit a one-byte length.
var ErrFieldTooLong = errors.New("phoenix: field longer than 255 bytes")

// BroadcastPush is a decoded kind-3 frame. Its byte slices alias the frame.
type BroadcastPush struct {
	JoinRef  string
	Ref      string
	Topic    string
	Event    string
	Meta     []byte // JSON object text, nil when absent
	Encoding byte   // EncodingBinary or EncodingJSON
	Payload  []byte
}

// Push is a decoded kind-0 frame. Its Payload aliases the frame.
type Push struct {
	JoinRef string
	Ref     string
	Topic   string
	Event   string
	Payload []byte
}

// DecodePush decodes a kind-0 binary frame (docs/protocol.md §1.3):
// kind, the lengths of join_ref, ref, topic and event (one byte each),
// those strings, then the raw payload. Every length is checked against
// the frame size.
func DecodePush(data []byte) (Push, error) {
	const header = 5
	if len(data) < header {
		return Push{}, fmt.Errorf("%w: binary frame of %d bytes is shorter than its header", ErrBadFrame, len(data))
	}
	if data[0] != KindPush {
		return Push{}, fmt.Errorf("%w: not a kind-0 push (kind %d)", ErrBadFrame, data[0])
	}
	j, r, t, e := int(data[1]), int(data[2]), int(data[3]), int(data[4])
	need := header + j + r + t + e
	if len(data) < need {
		return Push{}, fmt.Errorf("%w: binary frame lengths (%d) exceed its size (%d)", ErrBadFrame, need, len(data))
	}
	p := header
	next := func(n int) string { s := string(data[p : p+n]); p += n; return s }
	out := Push{}
	out.JoinRef = next(j)
	out.Ref = next(r)
	out.Topic = next(t)
	out.Event = next(e)
	out.Payload = data[p:]
	return out, nil
}

// AppendPush appends a kind-0 frame (used by tests and load tools).
func AppendPush(dst []byte, joinRef, ref, topic, event string, payload []byte) ([]byte, error) {
	for _, s := range []int{len(joinRef), len(ref), len(topic), len(event)} {
		if s > 255 {
			return dst, ErrFieldTooLong
		}
	}
	dst = append(dst, KindPush, byte(len(joinRef)), byte(len(ref)), byte(len(topic)), byte(len(event)))
	dst = append(dst, joinRef...)
	dst = append(dst, ref...)
	dst = append(dst, topic...)
	dst = append(dst, event...)
	return append(dst, payload...), nil
}

// DecodeBroadcastPush decodes a kind-3 binary frame, checking every length
// against the frame size.
func DecodeBroadcastPush(data []byte) (BroadcastPush, error) {
	const header = 7
	if len(data) < header {
		return BroadcastPush{}, fmt.Errorf("%w: binary frame of %d bytes is shorter than its header", ErrBadFrame, len(data))
	}
	if data[0] != KindUserBroadcastPush {
		return BroadcastPush{}, fmt.Errorf("%w: unsupported binary kind %d", ErrBadFrame, data[0])
	}
	j, r, t, e, m := int(data[1]), int(data[2]), int(data[3]), int(data[4]), int(data[5])
	enc := data[6]
	if enc != EncodingBinary && enc != EncodingJSON {
		return BroadcastPush{}, fmt.Errorf("%w: unknown payload encoding %d", ErrBadFrame, enc)
	}
	need := header + j + r + t + e + m
	if len(data) < need {
		return BroadcastPush{}, fmt.Errorf("%w: binary frame lengths (%d) exceed its size (%d)", ErrBadFrame, need, len(data))
	}
	p := header
	next := func(n int) []byte { b := data[p : p+n]; p += n; return b }
	out := BroadcastPush{Encoding: enc}
	out.JoinRef = string(next(j))
	out.Ref = string(next(r))
	out.Topic = string(next(t))
	out.Event = string(next(e))
	if m > 0 {
		out.Meta = next(m)
	}
	out.Payload = data[p:]
	return out, nil
}

// AppendBroadcastPush appends a kind-3 frame (used by load tools and tests).
func AppendBroadcastPush(dst []byte, joinRef, ref, topic, event string, meta []byte, encoding byte, payload []byte) ([]byte, error) {
	for _, s := range []int{len(joinRef), len(ref), len(topic), len(event), len(meta)} {
		if s > 255 {
			return dst, ErrFieldTooLong
		}
	}
	dst = append(dst, KindUserBroadcastPush, byte(len(joinRef)), byte(len(ref)), byte(len(topic)), byte(len(event)), byte(len(meta)), encoding)
	dst = append(dst, joinRef...)
	dst = append(dst, ref...)
	dst = append(dst, topic...)
	dst = append(dst, event...)
	dst = append(dst, meta...)
	return append(dst, payload...), nil
}

// AppendBroadcast appends a kind-4 frame for delivery to a client.
func AppendBroadcast(dst []byte, topic, event string, meta []byte, encoding byte, payload []byte) ([]byte, error) {
	if len(topic) > 255 || len(event) > 255 || len(meta) > 255 {
		return dst, ErrFieldTooLong
	}
	dst = append(dst, KindUserBroadcast, byte(len(topic)), byte(len(event)), byte(len(meta)), encoding)
	dst = append(dst, topic...)
	dst = append(dst, event...)
	dst = append(dst, meta...)
	return append(dst, payload...), nil
}

// BroadcastFrame is a decoded kind-4 frame. Its slices alias the frame.
type BroadcastFrame struct {
	Topic    string
	Event    string
	Meta     []byte
	Encoding byte
	Payload  []byte
}

// DecodeBroadcast decodes a kind-4 frame (used by load tools and tests).
func DecodeBroadcast(data []byte) (BroadcastFrame, error) {
	const header = 5
	if len(data) < header || data[0] != KindUserBroadcast {
		return BroadcastFrame{}, fmt.Errorf("%w: not a kind-4 frame", ErrBadFrame)
	}
	t, e, m := int(data[1]), int(data[2]), int(data[3])
	if len(data) < header+t+e+m {
		return BroadcastFrame{}, fmt.Errorf("%w: kind-4 lengths exceed the frame", ErrBadFrame)
	}
	p := header
	out := BroadcastFrame{Encoding: data[4]}
	out.Topic = string(data[p : p+t])
	p += t
	out.Event = string(data[p : p+e])
	p += e
	if m > 0 {
		out.Meta = data[p : p+m]
	}
	p += m
	out.Payload = data[p:]
	return out, nil
}
