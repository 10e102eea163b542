package phoenix

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/openrealtime/realtime/internal/jsonw"
	"strconv"
)

// Version is a negotiated serializer version.
type Version uint8

const (
	// V1 is vsn 1.0.0: JSON objects, text frames only.
	V1 Version = 1
	// V2 is vsn 2.0.0: JSON arrays plus binary broadcast frames.
	V2 Version = 2
)

// String returns the wire form of the version ("1.0.0" or "2.0.0").
func (v Version) String() string {
	if v == V1 {
		return "1.0.0"
	}
	return "2.0.0"
}

// ParseVersion maps the `vsn` query parameter to a Version. An empty value
// means 1.0.0, as on the real server; anything not 1.x or 2.x is refused.
func ParseVersion(s string) (Version, bool) {
	switch {
	case s == "":
		return V1, true
	case s == "1.0.0" || (len(s) > 2 && s[:2] == "1."):
		return V1, true
	case s == "2.0.0" || (len(s) > 2 && s[:2] == "2."):
		return V2, true
	}
	return 0, false
}

// Message is one decoded text frame. JoinRef and Ref are "" when the frame
// carried null (or nothing). Payload is the raw JSON of the payload member;
// it is nil when absent. Payload aliases the decoded buffer.
type Message struct {
	JoinRef string
	Ref     string
	Topic   string
	Event   string
	Payload json.RawMessage
}

// ErrBadFrame is wrapped by every decode error.
var ErrBadFrame = errors.New("phoenix: malformed frame")

// DecodeText decodes a text frame of the given version.
func DecodeText(v Version, data []byte) (Message, error) {
	if v == V1 {
		return decodeObject(data)
	}
	return decodeArray(data)
}

func decodeObject(data []byte) (Message, error) {
	var raw struct {
		Topic   *string         `json:"topic"`
		Event   *string         `json:"event"`
		Payload json.RawMessage `json:"payload"`
		Ref     json.RawMessage `json:"ref"`
		JoinRef json.RawMessage `json:"join_ref"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	if raw.Topic == nil || raw.Event == nil {
		return Message{}, fmt.Errorf("%w: topic and event are required", ErrBadFrame)
	}
	ref, err := decodeRef(raw.Ref)
	if err != nil {
		return Message{}, err
	}
	joinRef, err := decodeRef(raw.JoinRef)
	if err != nil {
		return Message{}, err
	}
	return Message{JoinRef: joinRef, Ref: ref, Topic: *raw.Topic, Event: *raw.Event, Payload: nullToNil(raw.Payload)}, nil
}

func decodeArray(data []byte) (Message, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(data, &parts); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	if len(parts) < 5 {
		return Message{}, fmt.Errorf("%w: want an array of 5 elements, got %d", ErrBadFrame, len(parts))
	}
	joinRef, err := decodeRef(parts[0])
	if err != nil {
		return Message{}, err
	}
	ref, err := decodeRef(parts[1])
	if err != nil {
		return Message{}, err
	}
	var topic, event string
	if err := json.Unmarshal(parts[2], &topic); err != nil {
		return Message{}, fmt.Errorf("%w: topic must be a string", ErrBadFrame)
	}
	if err := json.Unmarshal(parts[3], &event); err != nil {
		return Message{}, fmt.Errorf("%w: event must be a string", ErrBadFrame)
	}
	return Message{JoinRef: joinRef, Ref: ref, Topic: topic, Event: event, Payload: nullToNil(parts[4])}, nil
}

// decodeRef accepts a JSON string, number or null.
func decodeRef(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%w: bad ref", ErrBadFrame)
		}
		return s, nil
	}
	if _, err := strconv.ParseFloat(string(raw), 64); err == nil {
		return string(raw), nil
	}
	return "", fmt.Errorf("%w: ref must be a string or null", ErrBadFrame)
}

func nullToNil(raw json.RawMessage) json.RawMessage {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return nil
	}
	return raw
}

// AppendText appends the text frame for (joinRef, ref, topic, event, payload)
// in the given version. Empty refs are written as null. payload must be a
// JSON object; nil is written as {}.
func AppendText(dst []byte, v Version, joinRef, ref, topic, event string, payload []byte) []byte {
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	dst = AppendTextHead(dst, v, joinRef, ref, topic, event)
	dst = append(dst, payload...)
	return AppendTextTail(dst, v, ref)
}

// AppendTextHead appends the part of a text frame that comes before its
// payload; the caller appends the payload (a JSON object) and then
// AppendTextTail, so that a payload can be written in place.
func AppendTextHead(dst []byte, v Version, joinRef, ref, topic, event string) []byte {
	if v == V1 {
		// Server frames carry only topic, event, payload and ref (no join_ref).
		dst = append(dst, `{"topic":`...)
		dst = appendString(dst, topic)
		dst = append(dst, `,"event":`...)
		dst = appendString(dst, event)
		return append(dst, `,"payload":`...)
	}
	dst = append(dst, '[')
	dst = appendRef(dst, joinRef)
	dst = append(dst, ',')
	dst = appendRef(dst, ref)
	dst = append(dst, ',')
	dst = appendString(dst, topic)
	dst = append(dst, ',')
	dst = appendString(dst, event)
	return append(dst, ',')
}

// AppendTextTail appends the part of a text frame that follows its
// payload (see AppendTextHead).
func AppendTextTail(dst []byte, v Version, ref string) []byte {
	if v == V1 {
		dst = append(dst, `,"ref":`...)
		dst = appendRef(dst, ref)
		return append(dst, '}')
	}
	return append(dst, ']')
}

func appendRef(dst []byte, ref string) []byte {
	if ref == "" {
		return append(dst, "null"...)
	}
	return appendString(dst, ref)
}

// AppendJSONString appends s as a JSON string literal.
func AppendJSONString(dst []byte, s string) []byte { return jsonw.AppendString(dst, s) }

func appendString(dst []byte, s string) []byte { return jsonw.AppendString(dst, s) }
