package pglitebridge

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Frame operations of the tunnel (docs/pglite.md, "Browser bridge"). Every
// binary WebSocket message is one frame: op (1 byte), the virtual
// connection id (uint32, big endian), then the payload.
const (
	// opOpen (service → page) starts virtual connection id; no payload.
	opOpen byte = 1
	// opData (both ways) carries raw PostgreSQL wire-protocol bytes of
	// virtual connection id.
	opData byte = 2
	// opClose (both ways) ends virtual connection id; the payload, if any,
	// is a UTF-8 reason for logs.
	opClose byte = 3
)

// frameHeader is the size of a frame's op and id.
const frameHeader = 5

// WebSocket close codes the bridge endpoint sends; the reason text says
// the same for people.
const (
	// CloseBadHello: the first message was not a hello.
	CloseBadHello = 4000
	// CloseUnauthorized: the hello's secret is neither the bridge secret
	// nor a service-role key.
	CloseUnauthorized = 4001
	// CloseBusy: another bridge holds the database.
	CloseBusy = 4009
	// CloseProtocol: a malformed frame.
	CloseProtocol = 4002
)

var errShortFrame = errors.New("pglitebridge: frame shorter than its header")

// appendFrame appends one frame to dst and returns it.
func appendFrame(dst []byte, op byte, id uint32, payload []byte) []byte {
	dst = append(dst, op)
	dst = binary.BigEndian.AppendUint32(dst, id)
	return append(dst, payload...)
}

// parseFrame splits a frame; payload aliases b.
func parseFrame(b []byte) (op byte, id uint32, payload []byte, err error) {
	if len(b) < frameHeader {
		return 0, 0, nil, errShortFrame
	}
	op = b[0]
	switch op {
	case opOpen, opData, opClose:
	default:
		return 0, 0, nil, fmt.Errorf("pglitebridge: unknown frame op %d", op)
	}
	return op, binary.BigEndian.Uint32(b[1:frameHeader]), b[frameHeader:], nil
}
