package channels

import (
	"encoding/json"
	"sync/atomic"
	"time"
)

// Identity is who a subscription acts as: the claims of its JWT.
type Identity struct {
	// Role is the claims' role, the database role used for RLS checks.
	Role string
	// Sub is the claims' subject ("" when absent).
	Sub string
	// Claims is the canonical JSON object of all claims.
	Claims json.RawMessage
	// Key is equal for identical claims; subscribers are grouped by it.
	Key string
	// Exp is when the token expires.
	Exp time.Time
}

// Subscription is one joined channel of one connection. The transport fills
// the exported fields before [Hub.Subscribe] and must not change them after,
// except through the methods below.
type Subscription struct {
	// ID is unique within the process.
	ID uint64
	// Topic is the joined topic, e.g. "realtime:room1".
	Topic string
	// Name is the channel name, e.g. "room1".
	Name string
	// Private marks a private channel (a separate namespace from public).
	Private bool
	// Self delivers the subscription's own broadcasts back to it.
	Self bool
	// PresenceKey is the presence key of this subscription.
	PresenceKey string
	// Writer is the connection's outgoing queue.
	Writer Writer
	// Encoder frames messages for this subscription's protocol version.
	Encoder Encoder
	// Conn describes the owning connection for the inspector.
	Conn *ConnInfo
	// Perms, when set (private channels), reports the subscriber's
	// permissions for the inspector; safe for concurrent use.
	Perms func() *Permissions

	presence atomic.Bool                 // presence events are delivered
	muted    atomic.Bool                 // broadcasts are not delivered (private, no read)
	replay   atomic.Pointer[replayGuard] // nil unless the join asked for a replay
	identity atomic.Pointer[Identity]    // current claims; swapped on access_token
	pg       atomic.Pointer[pgState]     // postgres_changes bindings, nil when none

	// meta is this subscription's presence meta; guarded by its topic's mu.
	meta *presenceMeta

	// class and classBase are guarded by the hub's pgIndex.mu: the
	// subscriber class s belongs to, and the class's drop counters
	// when s joined it.
	class     *subscriberClass
	classBase [numDropReasons]int64
	hub       *Hub                  // set by Hub.Subscribe
	topic     atomic.Pointer[topic] // set by Hub.Subscribe; nil before

	sent  atomic.Int64
	drops [numDropReasons]atomic.Int64
}

// ConnInfo describes a connection for operators. Fields are set once at
// connect; the counters are atomic.
type ConnInfo struct {
	// ID is the connection's id.
	ID uint64
	// Transport is "websocket" or "sse".
	Transport string
	// Version is the protocol version, e.g. "2.0.0".
	Version string
	// RemoteAddr is the client's address.
	RemoteAddr string
	// Since is when the connection opened.
	Since time.Time
	// QueuedBytes reports the bytes waiting in the outgoing queue.
	QueuedBytes func() int
	// Close closes the connection with the given reason; safe to call from any goroutine.
	Close func(CloseReason)
}

// SetPresence turns delivery of presence events to this subscription on or off.
func (s *Subscription) SetPresence(on bool) { s.presence.Store(on) }

// SetBroadcastMuted stops (or resumes) delivery of broadcasts to this
// subscription: a private channel without broadcast read.
func (s *Subscription) SetBroadcastMuted(on bool) { s.muted.Store(on) }

// BroadcastMuted reports whether broadcasts are withheld.
func (s *Subscription) BroadcastMuted() bool { return s.muted.Load() }

// PresenceEnabled reports whether presence events are delivered.
func (s *Subscription) PresenceEnabled() bool { return s.presence.Load() }

// SetIdentity replaces the subscription's claims (on join and access_token).
func (s *Subscription) SetIdentity(id *Identity) { s.identity.Store(id) }

// Identity returns the current claims; nil before SetIdentity.
func (s *Subscription) Identity() *Identity { return s.identity.Load() }

// Sent returns how many messages were queued to this subscription.
func (s *Subscription) Sent() int64 { return s.sent.Load() }

// Dropped returns how many messages were not sent for the given reason,
// including those counted for its postgres_changes class.
func (s *Subscription) Dropped(r DropReason) int64 {
	n := s.drops[r].Load()
	if s.hub != nil {
		n += s.hub.pg.classDrops(s, r)
	}
	return n
}

// deliver queues f and counts it.
func (s *Subscription) deliver(f Frame) bool { return s.count(s.Writer.Enqueue(f)) }

// count counts a frame queued (ok) or refused as a slow consumer's, and
// returns ok.
func (s *Subscription) count(ok bool) bool {
	if ok {
		s.sent.Add(1)
		return true
	}
	s.Drop(DropSlowConsumer)
	return false
}

// Drop records that a message was not sent to s for reason r.
func (s *Subscription) Drop(r DropReason) {
	s.drops[r].Add(1)
	dropTotals[r].Add(1)
}

// dropTotals counts drops by reason over the process's life.
var dropTotals [numDropReasons]atomic.Int64

// DropTotals returns how many messages were not sent, by DropReason, since
// the process started (indexed like DropReasons). Safe for concurrent use.
func DropTotals() []int64 {
	out := make([]int64, numDropReasons)
	for i := range out {
		out[i] = dropTotals[i].Load()
	}
	return out
}

// Deliver queues a frame built by the transport for this subscription only
// (replies, system messages) and counts it.
func (s *Subscription) Deliver(f Frame) bool { return s.deliver(f) }
