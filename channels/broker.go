package channels

// EnvelopeKind says what an Envelope carries.
type EnvelopeKind uint8

const (
	// EnvelopeBroadcast carries a broadcast.
	EnvelopeBroadcast EnvelopeKind = iota + 1
	// EnvelopePresenceDiff carries a presence diff (a per-node delta).
	EnvelopePresenceDiff
	// EnvelopePresenceReset says that node Remote's presence on Topic is
	// gone (the node stopped answering); the hub sends the leaves.
	EnvelopePresenceReset
	// EnvelopePresenceSynced says that this node's snapshot of the other
	// nodes' presence on Topic is complete.
	EnvelopePresenceSynced
	// EnvelopePresenceSyncing says that a new snapshot of Topic has begun
	// (until EnvelopePresenceSynced, leaves are remembered).
	EnvelopePresenceSyncing
	// EnvelopeIsolated says that this node hears no other node (its
	// routes or its NATS connection are gone): every subscriber of every
	// topic is told by a system error. Topic is unused.
	EnvelopeIsolated
	// EnvelopeRejoined says that this node hears another node again after
	// EnvelopeIsolated: every subscriber is told by a system ok.
	EnvelopeRejoined
)

// Envelope is a message addressed to a topic on every node.
type Envelope struct {
	// Kind says which field below is set.
	Kind EnvelopeKind
	// Topic is the hub's topic key (namespace and topic).
	Topic string
	// Broadcast is set for EnvelopeBroadcast.
	Broadcast *Broadcast
	// PresenceDiff is the JSON diff for EnvelopePresenceDiff.
	PresenceDiff []byte
	// Origin is the id of the sending subscription (0 for none); it is
	// meaningful only on the node that published.
	Origin uint64
	// Remote names the node a presence envelope is about: "" for this
	// node's own diffs, else the origin whose state the hub keeps apart
	// (docs/cluster.md "Presence").
	Remote string
}

// Broker carries envelopes between nodes. Publish must not block on slow
// subscribers; handlers run on the broker's delivery goroutine(s).
type Broker interface {
	// Publish sends e to the handler of every node, this one included.
	Publish(e *Envelope)
	// SetHandler installs the function that delivers envelopes on this node.
	// It is called once, before the first Publish.
	SetHandler(h func(*Envelope))
}

// InterestBroker is a Broker that wants to know which topics have
// subscribers on this node, so that it receives other nodes' envelopes
// only for those (docs/cluster.md "Interest"). The hub calls Interest with
// its shard lock held, in the order topics appear and disappear: it must
// not block, do IO or call back into the hub.
type InterestBroker interface {
	Broker
	// Interest reports that the topic key got its first local subscriber
	// (on) or lost its last one (!on).
	Interest(key string, on bool)
}

// PresenceBroker is a Broker that carries presence between nodes: the hub
// gives it LocalPresence so that it can answer other nodes' snapshot
// requests. SetPresenceSource is called once, in NewHub.
type PresenceBroker interface {
	Broker
	SetPresenceSource(func(key string) []byte)
}

// LocalBroker is the single-node Broker: Publish calls the handler directly
// on the caller's goroutine.
type LocalBroker struct {
	h func(*Envelope)
}

// Publish delivers e to this node.
func (b *LocalBroker) Publish(e *Envelope) { b.h(e) }

// SetHandler installs the delivery function.
func (b *LocalBroker) SetHandler(h func(*Envelope)) { b.h = h }
