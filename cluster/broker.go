package cluster

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/openrealtime/realtime/channels"
)

// Broker is one project's channels.InterestBroker and PresenceBroker on a
// Node. Publish and
// Interest never block; its handler runs on NATS delivery goroutines (one
// per subscribed topic, so one topic's messages are handled in order).
type Broker struct {
	node *Node
	ns   string
	h    func(*channels.Envelope) // set once by SetHandler, before use
	src  func(key string) []byte  // this node's presence; set once by SetPresenceSource

	mu     sync.Mutex // guards want, dirty, closed, resync
	want   map[string]bool
	dirty  map[string]struct{}
	closed bool
	resync bool // snapshot every subscribed topic again (an origin came back)
	// qh answers other nodes' inspector queries (query.go); pending are
	// this node's queries waiting to be sent by the run goroutine.
	qh      func(q []byte) []byte
	pending []*query

	// subs are the live subscriptions by topic key; owned by the node's
	// run goroutine (reconcile), never touched elsewhere.
	subs map[string]*nats.Subscription
	// qsub is the subscription to the project's query subject; owned by
	// the run goroutine like subs.
	qsub *nats.Subscription
}

// Namespace returns the project ref the broker carries.
func (b *Broker) Namespace() string { return b.ns }

// SetHandler installs the hub's delivery function.
func (b *Broker) SetHandler(h func(*channels.Envelope)) { b.h = h }

// SetPresenceSource installs the hub's LocalPresence, which answers other
// nodes' snapshot requests.
func (b *Broker) SetPresenceSource(src func(key string) []byte) { b.src = src }

// Publish delivers e to this node's subscribers at once and queues it for
// the other nodes: a broadcast as is, a presence diff of this node with
// the node's origin (docs/cluster.md "Presence").
func (b *Broker) Publish(e *channels.Envelope) {
	b.h(e)
	switch {
	case e.Kind == channels.EnvelopeBroadcast:
		b.node.enqueue(outMsg{subject: topicSubject(b.ns, e.Topic), data: encodeBroadcast(e)})
	case e.Kind == channels.EnvelopePresenceDiff && e.Remote == "":
		b.node.enqueue(outMsg{subject: topicSubject(b.ns, e.Topic), data: encodeFields(kindPresence, 0, []byte(e.Topic), []byte(b.node.origin), e.PresenceDiff)})
	}
}

// Interest records that topic key gained or lost its local subscribers;
// the node's goroutine subscribes or unsubscribes soon after. Called with
// a hub shard lock held: it only takes b.mu and never blocks.
func (b *Broker) Interest(key string, on bool) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	if on {
		b.want[key] = true
	} else {
		delete(b.want, key)
	}
	b.dirty[key] = struct{}{}
	b.mu.Unlock()
	b.node.wake()
}

// Close unsubscribes the broker's topics (soon, on the node's goroutine);
// later Interest calls are ignored. Idempotent.
func (b *Broker) Close() {
	b.markClosed()
	b.node.wake()
}

func (b *Broker) markClosed() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
}

// reconcile subscribes to the wanted topics and unsubscribes from the
// others, and reports whether the broker is closed and now has no
// subscriptions. Called only by the node's run goroutine.
func (b *Broker) reconcile() (gone bool) {
	type change struct {
		key string
		on  bool
	}
	b.mu.Lock()
	closed, resync := b.closed, b.resync
	b.resync = false
	var todo []change
	if closed {
		for key := range b.subs {
			todo = append(todo, change{key, false})
		}
	} else {
		for key := range b.dirty {
			todo = append(todo, change{key, b.want[key]})
		}
	}
	clear(b.dirty)
	answering, queries := b.qh != nil, b.pending
	b.pending = nil
	b.mu.Unlock()
	b.reconcileQueries(closed, answering, queries)
	if resync && !closed {
		for key := range b.subs {
			b.snapshot(key)
		}
	}
	for _, c := range todo {
		sub := b.subs[c.key]
		switch {
		case c.on && sub == nil:
			s, err := b.node.nc.Subscribe(topicSubject(b.ns, c.key), b.receiver(c.key))
			if err != nil {
				b.node.drop(classify(err), err, "topic_subscribe", true)
				continue
			}
			b.subs[c.key] = s
			b.snapshot(c.key)
		case !c.on && sub != nil:
			if err := sub.Unsubscribe(); err != nil {
				b.node.log.Debug("cluster: unsubscribe", "err", err)
			}
			delete(b.subs, c.key)
		}
	}
	return closed
}

// receiver returns the handler of topic key's subscription: it fans a
// broadcast or a presence diff out on this node only, and answers snapshot
// requests with this node's presence.
func (b *Broker) receiver(key string) nats.MsgHandler {
	return func(m *nats.Msg) {
		kind, flags, fields, err := decodeMessage(m.Data)
		if err != nil || kind == kindHeartbeat {
			b.node.drop(dropBadMessage, err, "subject", m.Subject)
			return
		}
		if string(fields[0]) != key {
			return // another topic with the same hashed token
		}
		switch kind {
		case kindBroadcast:
			b.node.received.Add(1)
			b.h(broadcastEnvelope(flags, fields))
		case kindPresence:
			b.node.received.Add(1)
			b.presence(key, fields)
		case kindSnapshot:
			if m.Reply == "" || b.src == nil {
				return
			}
			if d := b.src(key); d != nil {
				b.node.enqueue(outMsg{subject: m.Reply, data: encodeFields(kindPresence, 0, []byte(key), []byte(b.node.origin), d)})
			}
		}
	}
}

// presence applies a presence message's fields (topic key, origin, diff).
func (b *Broker) presence(key string, fields [][]byte) {
	origin := string(fields[1])
	if origin == b.node.origin {
		return
	}
	b.node.heard(origin)
	b.h(&channels.Envelope{Kind: channels.EnvelopePresenceDiff, Topic: key, PresenceDiff: fields[2], Remote: origin})
}

// snapshot asks every node interested in topic key for its presence there,
// again at each of snapshotRepeats; replies are applied like diffs until
// snapshotWindow has passed, then the hub is told the snapshot is complete. Called only by the node's run
// goroutine, right after subscribing.
func (b *Broker) snapshot(key string) {
	nc := b.node.nc
	b.h(&channels.Envelope{Kind: channels.EnvelopePresenceSyncing, Topic: key})
	inbox := nats.NewInbox()
	sub, err := nc.Subscribe(inbox, func(m *nats.Msg) {
		if len(m.Data) == 0 {
			return // a status message (no responders): no node had presence
		}
		kind, _, fields, err := decodeMessage(m.Data)
		if err != nil || kind != kindPresence || string(fields[0]) != key {
			b.node.drop(dropBadMessage, err, "subject", m.Subject)
			return
		}
		b.presence(key, fields)
	})
	if err != nil {
		b.node.drop(classify(err), err, "snapshot", true)
		return
	}
	req := outMsg{subject: topicSubject(b.ns, key), reply: inbox, data: encodeFields(kindSnapshot, 0, []byte(key), []byte(b.node.origin))}
	if err := nc.PublishRequest(req.subject, req.reply, req.data); err != nil {
		b.node.drop(classify(err), err, "snapshot", true)
	}
	// Interest travels over the routes asynchronously: a node whose
	// subscription had not reached this one yet missed the request (and
	// this node its diffs), so the request is repeated within the window.
	for _, at := range snapshotRepeats {
		time.AfterFunc(at, func() { b.node.enqueue(req) })
	}
	time.AfterFunc(snapshotWindow, func() {
		sub.Unsubscribe()
		b.h(&channels.Envelope{Kind: channels.EnvelopePresenceSynced, Topic: key})
	})
}

// originDown tells the hub that origin's presence is gone on every topic
// this broker follows.
func (b *Broker) originDown(origin string) {
	b.mu.Lock()
	keys := make([]string, 0, len(b.want))
	for k := range b.want {
		keys = append(keys, k)
	}
	b.mu.Unlock()
	for _, k := range keys {
		b.h(&channels.Envelope{Kind: channels.EnvelopePresenceReset, Topic: k, Remote: origin})
	}
}

// resyncAll asks for fresh snapshots of every followed topic.
func (b *Broker) resyncAll() {
	b.mu.Lock()
	b.resync = true
	b.mu.Unlock()
	b.node.wake()
}
