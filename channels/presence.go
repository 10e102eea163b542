package channels

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/openrealtime/realtime/internal/jsonw"
)

// presenceMeta is one tracked presence of one subscription.
type presenceMeta struct {
	key     string
	ref     string
	payload []byte // compact JSON object
	cost    int    // bytes it adds to a presence_state (see metaCost)
}

// Presence limits (docs/protocol.md §6.1). The defaults keep a channel's whole
// presence_state at about 1 MiB, far below the 8 MiB default outgoing budget of
// a connection, so that sending it can never make a joiner a slow consumer.
const (
	// DefaultPresenceMetaBytes is the default cap on one tracked payload
	// (compact JSON).
	DefaultPresenceMetaBytes = 64 << 10
	// DefaultPresenceChannelBytes is the default cap on the presence of one
	// channel, counted as presence_state encodes it.
	DefaultPresenceChannelBytes = 1 << 20
	// DefaultPresenceMembers is the default cap on tracked presences (metas)
	// per channel.
	DefaultPresenceMembers = 10_000
)

// PresenceLimits bounds presence per member and per channel. A zero field
// means its default.
type PresenceLimits struct {
	MetaBytes    int // one tracked payload, compact JSON
	ChannelBytes int // every meta of the channel, as presence_state encodes it
	Members      int // metas of the channel
}

func (l PresenceLimits) withDefaults() PresenceLimits {
	if l.MetaBytes <= 0 {
		l.MetaBytes = DefaultPresenceMetaBytes
	}
	if l.ChannelBytes <= 0 {
		l.ChannelBytes = DefaultPresenceChannelBytes
	}
	if l.Members <= 0 {
		l.Members = DefaultPresenceMembers
	}
	return l
}

// Presence limit errors; their texts are what the client sees.
var (
	// ErrPresenceTooLarge is returned by Track when one payload is over
	// PresenceLimits.MetaBytes. The real server's text; the caller closes
	// the channel with it.
	ErrPresenceTooLarge = errors.New("Track message size exceeded")
	// ErrPresenceMembers is returned by Track when the channel already has
	// PresenceLimits.Members presences. The caller answers the track with
	// an error reply; the channel stays open.
	//
	//lint:ignore ST1005 the text is shown to clients as is
	ErrPresenceMembers = errors.New("Too many presence members in this channel")
	// ErrPresenceChannelBytes is returned by Track when the payload would
	// take the channel's presence over PresenceLimits.ChannelBytes. The
	// caller answers the track with an error reply; the channel stays open.
	//
	//lint:ignore ST1005 the text is shown to clients as is
	ErrPresenceChannelBytes = errors.New("Presence state size exceeded for this channel")
)

// presenceUsage is what the presence of one topic holds, kept beside the
// topic so that Track checks the caps in constant time.
type presenceUsage struct {
	members int
	bytes   int
}

// presenceTotals maps *topic to its *presenceUsage while the topic has at
// least one meta. Entries are read and written under the topic's mu.
var presenceTotals sync.Map

// usageLocked returns t's usage record, creating it. t.mu must be held.
func (t *topic) usageLocked() *presenceUsage {
	if u, ok := presenceTotals.Load(t); ok {
		return u.(*presenceUsage)
	}
	u := &presenceUsage{}
	presenceTotals.Store(t, u)
	return u
}

// metaCost is how many bytes m adds to a presence_state at most: its meta
// object plus its key entry (counted for every meta, so an upper bound).
func metaCost(key, ref string, payload []byte) int {
	return len(appendJSONString(nil, key)) + len(`:{"metas":[{"phx_ref":"","phx_ref_prev":""},]},`) + 2*len(ref) + len(payload)
}

// ErrPresencePayload is returned by Track when the payload is not a JSON
// object. Its text is the client-facing reply (docs/protocol.md §6.1).
//
//lint:ignore ST1005 the text is shown to clients as is
var ErrPresencePayload = errors.New("Presence track payload must be a map")

// refSource makes unique presence refs: 12 bytes (4 random per process, 8
// from a counter) in URL-safe base64, 16 characters, like Phoenix.
type refSource struct {
	prefix [4]byte
	n      atomic.Uint64
}

func (r *refSource) init() { rand.Read(r.prefix[:]) }

func (r *refSource) next() string {
	var b [12]byte
	copy(b[:4], r.prefix[:])
	binary.BigEndian.PutUint64(b[4:], r.n.Add(1))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Track records s's presence with payload (a JSON object; empty means {})
// within the default PresenceLimits. See TrackWithin.
func (h *Hub) Track(s *Subscription, payload []byte) (changed bool, err error) {
	return h.TrackWithin(s, payload, PresenceLimits{}, nil)
}

// TrackWithin records s's presence with payload (a JSON object; empty means
// {}). The same payload as the current one is a no-op (changed false). A new
// payload replaces the old meta and publishes one diff with the new meta in
// joins (carrying phx_ref_prev) and the old one in leaves. Tracking enables
// presence delivery for s.
//
// The payload must fit lim (zero fields are defaults): over MetaBytes gives
// ErrPresenceTooLarge; a new member beyond Members gives ErrPresenceMembers;
// a channel total beyond ChannelBytes gives ErrPresenceChannelBytes. On an
// error s's presence is unchanged. When the track is accepted (also as a
// no-op), accepted, if not nil, is called before the diff is published, so
// that the caller's reply precedes it.
func (h *Hub) TrackWithin(s *Subscription, payload []byte, lim PresenceLimits, accepted func()) (changed bool, err error) {
	lim = lim.withDefaults()
	obj, err := compactObject(payload)
	if err != nil {
		return false, err
	}
	if len(obj) > lim.MetaBytes {
		return false, ErrPresenceTooLarge
	}
	key := TopicKey(s.Topic, s.Private)
	t := h.lookup(key)
	if t == nil {
		return false, errors.New("channels: track on a subscription that is not joined")
	}
	t.mu.Lock()
	old := s.meta
	if old != nil && bytes.Equal(old.payload, obj) {
		t.mu.Unlock()
		s.SetPresence(true)
		if accepted != nil {
			accepted()
		}
		return false, nil
	}
	ref := h.refs.next()
	m := &presenceMeta{key: s.PresenceKey, ref: ref, payload: obj, cost: metaCost(s.PresenceKey, ref, obj)}
	u := t.usageLocked()
	members, total := u.members+1, u.bytes+m.cost
	if old != nil {
		members, total = members-1, total-old.cost
	}
	switch {
	case members > lim.Members:
		err = ErrPresenceMembers
	case total > lim.ChannelBytes:
		err = ErrPresenceChannelBytes
	}
	if err != nil {
		if u.members == 0 {
			presenceTotals.Delete(t)
		}
		t.mu.Unlock()
		return false, err
	}
	u.members, u.bytes = members, total
	metas := t.presence[m.key]
	if old != nil {
		metas = removeMeta(metas, old)
	}
	t.presence[m.key] = append(metas, m)
	s.meta = m
	t.mu.Unlock()
	s.SetPresence(true)
	if accepted != nil {
		accepted()
	}

	var diff []byte
	if old != nil {
		diff = encodeDiff(m, old.ref, old)
	} else {
		diff = encodeDiff(m, "", nil)
	}
	h.broker.Publish(&Envelope{Kind: EnvelopePresenceDiff, Topic: key, PresenceDiff: diff, Origin: s.ID})
	return true, nil
}

// Untrack removes s's presence and publishes the leave. It is a no-op when s
// tracks nothing.
func (h *Hub) Untrack(s *Subscription) {
	key := TopicKey(s.Topic, s.Private)
	t := h.lookup(key)
	if t == nil {
		return
	}
	t.mu.Lock()
	diff := t.untrackLocked(s)
	t.mu.Unlock()
	if diff != nil {
		h.broker.Publish(&Envelope{Kind: EnvelopePresenceDiff, Topic: key, PresenceDiff: diff, Origin: s.ID})
	}
}

// untrackLocked removes s's meta and returns the leave diff, or nil.
// t.mu must be held.
func (t *topic) untrackLocked(s *Subscription) []byte {
	m := s.meta
	if m == nil {
		return nil
	}
	s.meta = nil
	if u := t.usageLocked(); u.members <= 1 {
		presenceTotals.Delete(t)
	} else {
		u.members--
		u.bytes -= m.cost
	}
	metas := removeMeta(t.presence[m.key], m)
	if len(metas) == 0 {
		delete(t.presence, m.key)
	} else {
		t.presence[m.key] = metas
	}
	return encodeDiff(nil, "", m)
}

// PresenceState returns the full presence map of s's topic as the JSON
// payload of a presence_state message: {key: {"metas": [...]}}.
func (h *Hub) PresenceState(s *Subscription) []byte {
	t := h.lookup(TopicKey(s.Topic, s.Private))
	if t == nil {
		return []byte("{}")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var remote map[string][]*remoteMeta // key → other nodes' metas
	if t.remote != nil && len(t.remote.origins) > 0 {
		remote = make(map[string][]*remoteMeta)
		for _, metas := range t.remote.origins {
			for _, m := range metas {
				remote[m.key] = append(remote[m.key], m)
			}
		}
	}
	buf := []byte{'{'}
	first := true
	open := func(key string) {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendJSONString(buf, key)
		buf = append(buf, `:{"metas":[`...)
	}
	for key, metas := range t.presence {
		open(key)
		for i, m := range metas {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendMeta(buf, m, "")
		}
		for _, m := range remote[key] {
			buf = append(buf, ',')
			buf = append(buf, m.obj...)
		}
		delete(remote, key)
		buf = append(buf, "]}"...)
	}
	for key, metas := range remote {
		open(key)
		for i, m := range metas {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, m.obj...)
		}
		buf = append(buf, "]}"...)
	}
	return append(buf, '}')
}

// PresenceCount returns how many metas are tracked on s's topic.
func (t *topic) presenceCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, metas := range t.presence {
		n += len(metas)
	}
	return n
}

func (t *topic) fanOutPresenceDiff(diff []byte) (delivered int) {
	var cache encodeCache
	build := func(e Encoder) (Frame, bool) { return e.EncodePresenceDiff(t.wire, diff), true }
	subs := *t.subs.Load()
	direct := len(subs) <= maxDirectTopic
	var wb WriteBatch // the direct writes, made together
	for _, s := range subs {
		if !s.PresenceEnabled() {
			continue
		}
		f, _ := cache.get(s.Encoder, build)
		if deliverTo(s, f, direct, &wb) {
			delivered++
		}
	}
	if wb != nil {
		wb.Flush()
	}
	if delivered > 0 {
		t.msgsOut.Add(int64(delivered))
	}
	return delivered
}

func removeMeta(metas []*presenceMeta, m *presenceMeta) []*presenceMeta {
	out := metas[:0:0]
	for _, x := range metas {
		if x != m {
			out = append(out, x)
		}
	}
	return out
}

// encodeDiff builds {"joins":{...},"leaves":{...}} for one join and/or one leave.
func encodeDiff(join *presenceMeta, prevRef string, leave *presenceMeta) []byte {
	buf := []byte(`{"joins":{`)
	if join != nil {
		buf = appendJSONString(buf, join.key)
		buf = append(buf, `:{"metas":[`...)
		buf = appendMeta(buf, join, prevRef)
		buf = append(buf, "]}"...)
	}
	buf = append(buf, `},"leaves":{`...)
	if leave != nil {
		buf = appendJSONString(buf, leave.key)
		buf = append(buf, `:{"metas":[`...)
		buf = appendMeta(buf, leave, "")
		buf = append(buf, "]}"...)
	}
	return append(buf, "}}"...)
}

// appendMeta writes the tracked object with phx_ref (and phx_ref_prev) added.
func appendMeta(buf []byte, m *presenceMeta, prevRef string) []byte {
	buf = append(buf, `{"phx_ref":`...)
	buf = appendJSONString(buf, m.ref)
	if prevRef != "" {
		buf = append(buf, `,"phx_ref_prev":`...)
		buf = appendJSONString(buf, prevRef)
	}
	inner := bytes.TrimSpace(m.payload[1 : len(m.payload)-1])
	if len(inner) > 0 {
		buf = append(buf, ',')
		buf = append(buf, inner...)
	}
	return append(buf, '}')
}

// compactObject checks that p is a JSON object (empty means {}) and returns
// it compacted, without phx_ref keys the client might have sent.
func compactObject(p []byte) ([]byte, error) {
	p = bytes.TrimSpace(p)
	if len(p) == 0 || string(p) == "null" {
		return []byte("{}"), nil
	}
	var obj map[string]json.RawMessage
	if p[0] != '{' || json.Unmarshal(p, &obj) != nil {
		return nil, ErrPresencePayload
	}
	_, a := obj["phx_ref"]
	_, b := obj["phx_ref_prev"]
	if a || b {
		delete(obj, "phx_ref")
		delete(obj, "phx_ref_prev")
		out, _ := json.Marshal(obj)
		return out, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, p); err != nil {
		return nil, ErrPresencePayload
	}
	return buf.Bytes(), nil
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(dst []byte, s string) []byte { return jsonw.AppendString(dst, s) }
