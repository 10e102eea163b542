package cluster

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/openrealtime/realtime/channels"
)

// maxTokenTopic is the longest topic key spelled out (base64url) in a
// subject; longer keys are hashed (docs/cluster.md "Subjects").
const maxTokenTopic = 120

// wireVersion is the first byte of every message this package publishes.
const wireVersion = 1

// Message kinds (the second byte).
const (
	kindBroadcast = 1 // a broadcast, on a topic's subject
	kindPresence  = 2 // a presence diff of one origin, on a topic's subject
	kindSnapshot  = 3 // a request for every node's presence on a topic, on its subject
	kindHeartbeat = 4 // a node's heartbeat and report, on heartbeatSubject
	kindQuery     = 5 // an inspector query, on a project's query subject
	kindAnswer    = 6 // a node's answer to a query, on the query's reply subject
)

// flagBinary marks a binary broadcast payload.
const flagBinary = 1

// heartbeatSubject carries every node's heartbeat, whatever its projects.
const heartbeatSubject = "rt.hb"

// errBadMessage is wrapped by decode for input it cannot read.
var errBadMessage = errors.New("cluster: bad message")

// topicToken is the subject token of a hub topic key: "k" and the key in
// unpadded base64url, or "h" and a hash for long keys. Receivers compare
// the key carried in the message, so a hash collision costs only a
// discarded message.
func topicToken(key string) string {
	if len(key) <= maxTokenTopic {
		return "k" + base64.RawURLEncoding.EncodeToString([]byte(key))
	}
	sum := sha256.Sum256([]byte(key))
	return "h" + hex.EncodeToString(sum[:16])
}

// topicSubject is the subject of topic key's broadcasts and presence in
// namespace ns.
func topicSubject(ns, key string) string {
	return "rt." + ns + ".t." + topicToken(key)
}

// encodeFields returns version, kind, flags and each field prefixed by its
// length as a uvarint.
func encodeFields(kind, flags byte, fields ...[]byte) []byte {
	n := 3
	for _, f := range fields {
		n += binary.MaxVarintLen32 + len(f)
	}
	out := make([]byte, 0, n)
	out = append(out, wireVersion, kind, flags)
	for _, f := range fields {
		out = binary.AppendUvarint(out, uint64(len(f)))
		out = append(out, f...)
	}
	return out
}

// decodeFields reads a message of encodeFields with exactly len(fields)
// fields into fields; the slices alias data.
func decodeFields(data []byte, fields [][]byte) (kind, flags byte, err error) {
	if len(data) < 3 {
		return 0, 0, fmt.Errorf("%w: %d bytes", errBadMessage, len(data))
	}
	if data[0] != wireVersion {
		return 0, 0, fmt.Errorf("%w: version %d", errBadMessage, data[0])
	}
	rest := data[3:]
	for i := range fields {
		l, n := binary.Uvarint(rest)
		if n <= 0 || l > uint64(len(rest)-n) {
			return 0, 0, fmt.Errorf("%w: field %d", errBadMessage, i)
		}
		fields[i] = rest[n : n+int(l) : n+int(l)]
		rest = rest[n+int(l):]
	}
	if len(rest) != 0 {
		return 0, 0, fmt.Errorf("%w: %d trailing bytes", errBadMessage, len(rest))
	}
	return data[1], data[2], nil
}

// fieldCount is how many fields a message of each kind has, -1 for an
// unknown kind.
func fieldCount(kind byte) int {
	switch kind {
	case kindBroadcast:
		return 6 // topic key, event, meta, verbatim, id, payload
	case kindPresence:
		return 3 // topic key, origin, diff
	case kindSnapshot:
		return 2 // topic key, requesting origin
	case kindHeartbeat:
		return 1 // origin; then the report (report.go) and fields of later versions
	case kindQuery:
		return 2 // requesting origin, query
	case kindAnswer:
		return 2 // answering origin, answer
	}
	return -1
}

// openEnded reports whether a kind's messages may carry more fields than
// fieldCount says: a heartbeat gained its report after the first version,
// and later versions may add fields that older nodes skip.
func openEnded(kind byte) bool { return kind == kindHeartbeat }

// decodeMessage reads a message of any kind: its kind, flags and fields,
// which alias data.
func decodeMessage(data []byte) (kind, flags byte, fields [][]byte, err error) {
	if len(data) < 3 {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes", errBadMessage, len(data))
	}
	n := fieldCount(data[1])
	if n < 0 {
		return 0, 0, nil, fmt.Errorf("%w: kind %d", errBadMessage, data[1])
	}
	if openEnded(data[1]) {
		return decodeOpen(data, n)
	}
	fields = make([][]byte, n)
	kind, flags, err = decodeFields(data, fields)
	return kind, flags, fields, err
}

// decodeOpen reads a message with at least minFields fields and any number
// more; the fields alias data.
func decodeOpen(data []byte, minFields int) (kind, flags byte, fields [][]byte, err error) {
	if data[0] != wireVersion {
		return 0, 0, nil, fmt.Errorf("%w: version %d", errBadMessage, data[0])
	}
	rest := data[3:]
	for len(rest) > 0 {
		l, n := binary.Uvarint(rest)
		if n <= 0 || l > uint64(len(rest)-n) {
			return 0, 0, nil, fmt.Errorf("%w: field %d", errBadMessage, len(fields))
		}
		fields = append(fields, rest[n:n+int(l):n+int(l)])
		rest = rest[n+int(l):]
	}
	if len(fields) < minFields {
		return 0, 0, nil, fmt.Errorf("%w: %d fields, want at least %d", errBadMessage, len(fields), minFields)
	}
	return data[1], data[2], fields, nil
}

// encodeBroadcast returns e (a broadcast envelope) as one message: topic
// key, event, meta, verbatim, id and payload. The origin subscription is
// not sent: it means nothing on another node.
func encodeBroadcast(e *channels.Envelope) []byte {
	b := e.Broadcast
	var flags byte
	if b.Binary {
		flags |= flagBinary
	}
	return encodeFields(kindBroadcast, flags, []byte(e.Topic), []byte(b.Event), b.Meta, b.Verbatim, []byte(b.ID), b.Payload)
}

// decodeBroadcast reads a message built by encodeBroadcast. The returned
// envelope's byte slices alias data, which the caller must not change.
func decodeBroadcast(data []byte) (*channels.Envelope, error) {
	if len(data) >= 2 && data[1] != kindBroadcast {
		return nil, fmt.Errorf("%w: kind %d", errBadMessage, data[1])
	}
	fields := make([][]byte, 6)
	_, flags, err := decodeFields(data, fields)
	if err != nil {
		return nil, err
	}
	return broadcastEnvelope(flags, fields), nil
}

// broadcastEnvelope builds the envelope of a broadcast message's fields.
func broadcastEnvelope(flags byte, fields [][]byte) *channels.Envelope {
	b := &channels.Broadcast{
		Event:    string(fields[1]),
		Meta:     nilIfEmpty(fields[2]),
		Verbatim: nilIfEmpty(fields[3]),
		ID:       string(fields[4]),
		Payload:  fields[5],
		Binary:   flags&flagBinary != 0,
	}
	return &channels.Envelope{Kind: channels.EnvelopeBroadcast, Topic: string(fields[0]), Broadcast: b}
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
