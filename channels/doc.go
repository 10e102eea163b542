// Package channels holds the transport-independent core of the realtime
// service: topics and their subscriptions, broadcast fan-out, presence, and
// (in pgchanges*.go) postgres_changes bindings and their fan-out.
//
// It knows nothing about WebSocket, SSE or Phoenix framing. A transport
// registers a [Subscription] that carries a [Writer] (a non-blocking queue of
// frames) and an [Encoder] (how one protocol version frames a message). The
// hub encodes each outgoing message once per distinct Encoder of a topic and
// hands the same immutable [Frame] to every subscriber that uses it.
//
// Lock order: Hub shard lock → topic.mu. No lock is held while calling an
// Authorizer or doing IO; Writer.Enqueue never blocks, so it may be called
// with a topic lock held.
//
// Fan-out goes through a [Broker] so that a later multi-node deployment can
// carry broadcasts and presence deltas between nodes; [LocalBroker] is the
// in-process implementation.
package channels
