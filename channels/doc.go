// Package channels holds the transport-independent core of the realtime
// service: topics and their subscriptions, broadcast fan-out, presence, and
// postgres_changes bindings and their fan-out.
//
// It knows nothing about WebSocket, SSE or Phoenix framing. A transport
// registers a [Subscription] that carries a [Writer] (a non-blocking queue of
// frames) and an [Encoder] (how one protocol version frames a message). The
// hub encodes each outgoing message once per distinct Encoder of a topic and
// hands the same immutable [Frame] to every subscriber that uses it.
//
// Where things are:
//   - hub.go, broadcast.go, presence.go, subscription.go: the [Hub], its
//     topics (sharded by key), broadcast and presence fan-out, and the
//     per-subscription counters.
//   - broker.go: fan-out goes through a [Broker]; [LocalBroker] is the
//     single-node implementation, package cluster carries broadcasts and
//     presence between nodes over NATS as an [InterestBroker] and
//     [PresenceBroker] (docs/cluster.md); presenceremote.go keeps the other
//     nodes' presence per topic. Database
//     broadcasts bypass the broker: every node reads the database itself.
//   - authorizer.go: the [Authorizer] that postgres_changes needs from the
//     database (package auth/rls implements it) and its error sentinels.
//   - pgbind.go: [PGChanges], which parses join bindings ([PGChanges.Bind])
//     and validates them against the database ([PGChanges.Activate]).
//   - pgindex.go, subscriberclass.go: the index schema → table → subscriber
//     classes; a class is the subscribers sharing one identity and the same
//     bindings, so filters, RLS and encoding run once per class.
//   - pgfanout.go: [PGChanges.Process], one batch through the phases match →
//     authorize → encode → deliver; pgencode.go builds the data objects.
//   - replay.go, cursor.go: the replay window and [Cursor]s for SSE resume
//     ([PGChanges.Replay] runs the same phases for one subscriber).
//   - inspect.go: snapshots for operators, message-out totals
//     ([Hub.MessagesOut]) and the live-tail tap ([Hub.SetTap]).
//
// Lock order: Hub shard lock → topic.mu. The pgIndex lock is a leaf: it is
// never held while taking another. [InterestBroker.Interest] is called with
// a shard lock held and may take only leaf locks of its own. No lock is held while calling an
// Authorizer or doing IO; Writer.Enqueue never blocks, so it may be called
// with a topic lock held.
//
// Observation stays off the hot path: counters are atomics bumped where the
// work happens, and no [TapEvent] is built while no tap is installed.
package channels
