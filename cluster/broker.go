package cluster

import (
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/openrealtime/realtime/channels"
)

// Broker is one project's channels.InterestBroker on a Node. Publish and
// Interest never block; its handler runs on NATS delivery goroutines (one
// per subscribed topic, so one topic's messages are handled in order).
type Broker struct {
	node *Node
	ns   string
	h    func(*channels.Envelope) // set once by SetHandler, before use

	mu     sync.Mutex // guards want, dirty, closed
	want   map[string]bool
	dirty  map[string]struct{}
	closed bool

	// subs are the live subscriptions by topic key; owned by the node's
	// run goroutine (reconcile), never touched elsewhere.
	subs map[string]*nats.Subscription
}

// SetHandler installs the hub's delivery function.
func (b *Broker) SetHandler(h func(*channels.Envelope)) { b.h = h }

// Publish delivers e to this node's subscribers at once and, for a
// broadcast, queues it for the other nodes. Presence diffs stay on this
// node (docs/cluster.md "Presence").
func (b *Broker) Publish(e *channels.Envelope) {
	b.h(e)
	if e.Kind != channels.EnvelopeBroadcast {
		return
	}
	b.node.enqueue(outMsg{subject: broadcastSubject(b.ns, e.Topic), data: encodeBroadcast(e)})
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
	closed := b.closed
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
	b.mu.Unlock()
	for _, c := range todo {
		sub := b.subs[c.key]
		switch {
		case c.on && sub == nil:
			s, err := b.node.nc.Subscribe(broadcastSubject(b.ns, c.key), b.receiver(c.key))
			if err != nil {
				b.node.drop(classify(err), err, "topic_subscribe", true)
				continue
			}
			b.subs[c.key] = s
		case !c.on && sub != nil:
			if err := sub.Unsubscribe(); err != nil {
				b.node.log.Debug("cluster: unsubscribe", "err", err)
			}
			delete(b.subs, c.key)
		}
	}
	return closed
}

// receiver returns the handler of topic key's subscription: it decodes a
// message and fans it out on this node only.
func (b *Broker) receiver(key string) nats.MsgHandler {
	return func(m *nats.Msg) {
		e, err := decodeBroadcast(m.Data)
		if err != nil {
			b.node.drop(dropBadMessage, err, "subject", m.Subject)
			return
		}
		if e.Topic != key {
			return // another topic with the same hashed token
		}
		b.node.received.Add(1)
		b.h(e)
	}
}
