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

const (
	kindBroadcast = 1
	flagBinary    = 1
)

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

// broadcastSubject is the subject of topic key's broadcasts in namespace ns.
func broadcastSubject(ns, key string) string {
	return "rt." + ns + ".bc." + topicToken(key)
}

// encodeBroadcast returns e (a broadcast envelope) as one message: version,
// kind, flags, then topic key, event, meta, verbatim, id and payload, each
// prefixed by its length as a uvarint. The origin is not sent: it means
// nothing on another node.
func encodeBroadcast(e *channels.Envelope) []byte {
	b := e.Broadcast
	n := 3 + 6*binary.MaxVarintLen32 + len(e.Topic) + len(b.Event) + len(b.Meta) + len(b.Verbatim) + len(b.ID) + len(b.Payload)
	out := make([]byte, 0, n)
	var flags byte
	if b.Binary {
		flags |= flagBinary
	}
	out = append(out, wireVersion, kindBroadcast, flags)
	for _, f := range [][]byte{[]byte(e.Topic), []byte(b.Event), b.Meta, b.Verbatim, []byte(b.ID), b.Payload} {
		out = binary.AppendUvarint(out, uint64(len(f)))
		out = append(out, f...)
	}
	return out
}

// decodeBroadcast reads a message built by encodeBroadcast. The returned
// envelope's byte slices alias data, which the caller must not change.
func decodeBroadcast(data []byte) (*channels.Envelope, error) {
	if len(data) < 3 {
		return nil, fmt.Errorf("%w: %d bytes", errBadMessage, len(data))
	}
	if data[0] != wireVersion || data[1] != kindBroadcast {
		return nil, fmt.Errorf("%w: version %d kind %d", errBadMessage, data[0], data[1])
	}
	flags := data[2]
	rest := data[3:]
	var fields [6][]byte
	for i := range fields {
		l, n := binary.Uvarint(rest)
		if n <= 0 || l > uint64(len(rest)-n) {
			return nil, fmt.Errorf("%w: field %d", errBadMessage, i)
		}
		fields[i] = rest[n : n+int(l) : n+int(l)]
		rest = rest[n+int(l):]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadMessage, len(rest))
	}
	b := &channels.Broadcast{
		Event:    string(fields[1]),
		Meta:     nilIfEmpty(fields[2]),
		Verbatim: nilIfEmpty(fields[3]),
		ID:       string(fields[4]),
		Payload:  fields[5],
		Binary:   flags&flagBinary != 0,
	}
	return &channels.Envelope{Kind: channels.EnvelopeBroadcast, Topic: string(fields[0]), Broadcast: b}, nil
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
