package channels

import (
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

const numShards = 32

// HubConfig configures a Hub.
type HubConfig struct {
	// Broker carries broadcasts and presence deltas; nil means a LocalBroker.
	Broker Broker
	// Logger receives hub logs; nil discards them.
	Logger *slog.Logger
}

// Hub owns every topic and its subscriptions on this node. It is safe for
// concurrent use.
type Hub struct {
	shards [numShards]shard
	seed   maphash.Seed
	broker Broker
	// interest is broker when it implements InterestBroker, else nil; it
	// is consulted only when a topic appears or disappears.
	interest InterestBroker
	log      *slog.Logger
	ids      atomic.Uint64
	refs     refSource
	pg       *pgIndex // postgres_changes bindings of every topic
	// tap observes fan-outs for the live tail; nil (the usual case) means
	// no TapEvent is built at all.
	tap atomic.Pointer[func(TapEvent)]
	// out counts frames queued by fan-out since NewHub, by kind.
	out struct{ broadcast, presence, postgresChanges atomic.Int64 }
}

type shard struct {
	mu     sync.RWMutex // guards topics
	topics map[string]*topic
}

// topic is one channel namespace+name with its subscribers.
type topic struct {
	key     string
	wire    string // the topic as clients name it, e.g. "realtime:room1"
	name    string
	private bool

	mu       sync.Mutex                      // guards presence, writes to subs
	subs     atomic.Pointer[[]*Subscription] // copy-on-write; read without mu
	presence map[string][]*presenceMeta      // key → metas
	remote   *remoteState                    // other nodes' presence; nil on one node

	msgsIn     atomic.Int64
	msgsOut    atomic.Int64
	lastActive atomic.Int64 // unix nanoseconds
}

// NewHub returns an empty hub.
func NewHub(cfg HubConfig) *Hub {
	h := &Hub{seed: maphash.MakeSeed(), broker: cfg.Broker, log: cfg.Logger}
	if h.broker == nil {
		h.broker = &LocalBroker{}
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	for i := range h.shards {
		h.shards[i].topics = make(map[string]*topic)
	}
	h.interest, _ = h.broker.(InterestBroker)
	if pb, ok := h.broker.(PresenceBroker); ok {
		pb.SetPresenceSource(h.LocalPresence)
	}
	h.refs.init()
	h.pg = newPGIndex()
	h.broker.SetHandler(h.deliverEnvelope)
	return h
}

// NextID returns a new process-unique id for a subscription or connection.
func (h *Hub) NextID() uint64 { return h.ids.Add(1) }

// TopicKey is the hub's key for a topic in the public or private namespace.
func TopicKey(topic string, private bool) string {
	if private {
		return "private|" + topic
	}
	return "public|" + topic
}

func (h *Hub) shardFor(key string) *shard {
	return &h.shards[maphash.String(h.seed, key)%numShards]
}

func (h *Hub) lookup(key string) *topic {
	sh := h.shardFor(key)
	sh.mu.RLock()
	t := sh.topics[key]
	sh.mu.RUnlock()
	return t
}

// Subscribe adds s to its topic. The caller must have filled s's fields.
func (h *Hub) Subscribe(s *Subscription) {
	s.hub = h
	key := TopicKey(s.Topic, s.Private)
	sh := h.shardFor(key)
	sh.mu.Lock()
	t := sh.topics[key]
	if t == nil {
		t = &topic{key: key, wire: s.Topic, name: s.Name, private: s.Private, presence: make(map[string][]*presenceMeta)}
		empty := []*Subscription{}
		t.subs.Store(&empty)
		sh.topics[key] = t
		if h.interest != nil {
			h.interest.Interest(key, true)
		}
	}
	s.topic.Store(t)
	t.mu.Lock()
	// Append in place when there is room: readers hold headers of a shorter
	// length and never look past them, and removals build a new array, so
	// joins cost amortised O(1) instead of copying the subscriber list.
	next := append(*t.subs.Load(), s)
	t.subs.Store(&next)
	t.mu.Unlock()
	sh.mu.Unlock()
	t.touch()
}

// Unsubscribe removes s from its topic, publishes its presence leave, and
// drops its postgres_changes bindings. It is idempotent.
func (h *Hub) Unsubscribe(s *Subscription) {
	h.setPG(s, nil)
	key := TopicKey(s.Topic, s.Private)
	sh := h.shardFor(key)
	sh.mu.Lock()
	t := sh.topics[key]
	if t == nil {
		sh.mu.Unlock()
		return
	}
	t.mu.Lock()
	old := *t.subs.Load()
	next := make([]*Subscription, 0, len(old))
	found := false
	for _, o := range old {
		if o == s {
			found = true
			continue
		}
		next = append(next, o)
	}
	t.subs.Store(&next)
	var diff []byte
	if found {
		diff = t.untrackLocked(s)
	}
	t.mu.Unlock()
	if len(next) == 0 {
		delete(sh.topics, key)
		if h.interest != nil {
			h.interest.Interest(key, false)
		}
	}
	sh.mu.Unlock()
	if diff != nil {
		h.broker.Publish(&Envelope{Kind: EnvelopePresenceDiff, Topic: key, PresenceDiff: diff})
	}
}

// deliverEnvelope is the broker handler: it fans an envelope out to this
// node's subscribers of the topic.
func (h *Hub) deliverEnvelope(e *Envelope) {
	if e.Kind == EnvelopeIsolated || e.Kind == EnvelopeRejoined {
		h.clusterState(e.Kind == EnvelopeIsolated)
		return
	}
	t := h.lookup(e.Topic)
	if t == nil {
		return
	}
	t.touch()
	switch e.Kind {
	case EnvelopeBroadcast:
		n := t.fanOutBroadcast(e.Broadcast, e.Origin)
		if n > 0 {
			h.out.broadcast.Add(int64(n))
		}
		if h.tap.Load() != nil {
			p := e.Broadcast.Payload
			if e.Broadcast.Binary {
				p = []byte("(binary)")
			}
			kind := "broadcast"
			if e.Broadcast.ID != "" {
				kind = "db_broadcast" // from realtime.messages
			}
			h.emitTap(t.wire, kind, e.Broadcast.Event, p, n)
		}
	case EnvelopePresenceDiff, EnvelopePresenceReset, EnvelopePresenceSynced, EnvelopePresenceSyncing:
		diff := e.PresenceDiff
		if e.Kind != EnvelopePresenceDiff || e.Remote != "" {
			t.mu.Lock()
			switch e.Kind {
			case EnvelopePresenceDiff:
				diff = t.applyRemoteLocked(e.Remote, diff)
			case EnvelopePresenceReset:
				diff = t.resetRemoteLocked(e.Remote)
			case EnvelopePresenceSynced:
				t.syncedLocked(true)
				diff = nil
			case EnvelopePresenceSyncing:
				t.syncedLocked(false)
				diff = nil
			}
			t.mu.Unlock()
			if diff == nil {
				return
			}
		}
		n := t.fanOutPresenceDiff(diff)
		if n > 0 {
			h.out.presence.Add(int64(n))
		}
		if h.tap.Load() != nil {
			h.emitTap(t.wire, "presence", "presence_diff", diff, n)
		}
	}
}

func (t *topic) touch() { t.lastActive.Store(time.Now().UnixNano()) }

// encodeCache remembers the frame built for each encoder while one message
// is fanned out; a topic usually has one or two encoders.
type encodeCache struct {
	encs   [4]Encoder
	frames [4]Frame
	oks    [4]bool
	n      int
}

func (c *encodeCache) get(e Encoder, build func(Encoder) (Frame, bool)) (Frame, bool) {
	for i := 0; i < c.n; i++ {
		if c.encs[i] == e {
			return c.frames[i], c.oks[i]
		}
	}
	f, ok := build(e)
	if c.n < len(c.encs) {
		c.encs[c.n], c.frames[c.n], c.oks[c.n] = e, f, ok
		c.n++
	}
	return f, ok
}
