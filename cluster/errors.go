package cluster

import (
	"errors"

	"github.com/nats-io/nats.go"
)

// dropClass says why a message was not published or not delivered; each
// class has a counter in Stats and its own rate-limited warning.
type dropClass uint8

const (
	// dropQueueFull: the outgoing queue was full (NATS slower than the
	// producers).
	dropQueueFull dropClass = iota
	// dropDisconnected: the connection was closed, draining, or its
	// reconnect buffer was full.
	dropDisconnected
	// dropTooLarge: the message exceeded the server's max_payload.
	dropTooLarge
	// dropOther: any other publish error.
	dropOther
	// dropBadMessage: a received message could not be decoded.
	dropBadMessage
	// dropSlowConsumer: the server or client dropped messages for one of
	// our subscriptions (pending limits).
	dropSlowConsumer
	numDropClasses
)

// String names the class for logs.
func (c dropClass) String() string {
	switch c {
	case dropQueueFull:
		return "queue_full"
	case dropDisconnected:
		return "disconnected"
	case dropTooLarge:
		return "too_large"
	case dropBadMessage:
		return "bad_message"
	case dropSlowConsumer:
		return "slow_consumer"
	default:
		return "other"
	}
}

// classify maps a NATS publish or subscribe error to its class.
func classify(err error) dropClass {
	switch {
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrConnectionReconnecting):
		return dropDisconnected
	case errors.Is(err, nats.ErrMaxPayload):
		return dropTooLarge
	case errors.Is(err, nats.ErrSlowConsumer):
		return dropSlowConsumer
	default:
		return dropOther
	}
}
