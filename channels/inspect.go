package channels

import (
	"sort"
	"time"
)

// BindingInfo describes one postgres_changes binding for operators.
type BindingInfo struct {
	ID     int64    `json:"id"`
	Event  string   `json:"event"`
	Schema string   `json:"schema"`
	Table  string   `json:"table"`
	Filter string   `json:"filter,omitempty"`
	Select []string `json:"select,omitempty"`
}

// TopicStats is a snapshot of one channel.
type TopicStats struct {
	Topic        string        `json:"topic"`
	Name         string        `json:"name"`
	Private      bool          `json:"private"`
	Subscribers  int           `json:"subscribers"`
	Presence     int           `json:"presence"`
	MessagesIn   int64         `json:"messages_in"`
	MessagesOut  int64         `json:"messages_out"`
	LastActivity time.Time     `json:"last_activity"`
	Bindings     []BindingInfo `json:"postgres_changes"`
}

// SubscriberStats is a snapshot of one subscription.
type SubscriberStats struct {
	ID          uint64           `json:"id"`
	ConnID      uint64           `json:"conn_id"`
	Transport   string           `json:"transport"`
	Version     string           `json:"protocol_version"`
	RemoteAddr  string           `json:"remote_addr"`
	Role        string           `json:"role"`
	Sub         string           `json:"sub"`
	Since       time.Time        `json:"connected_since"`
	QueuedBytes int              `json:"queued_bytes"`
	Sent        int64            `json:"messages_sent"`
	NotSent     map[string]int64 `json:"messages_not_sent"`
	Presence    bool             `json:"presence"`
	Bindings    []BindingInfo    `json:"postgres_changes"`
	// Permissions is set on private channels only.
	Permissions *Permissions `json:"permissions,omitempty"`
}

func bindingInfos(s *Subscription) []BindingInfo {
	st := s.pg.Load()
	if st == nil {
		return []BindingInfo{}
	}
	out := make([]BindingInfo, 0, len(st.bindings))
	for _, b := range st.bindings {
		out = append(out, BindingInfo{ID: b.ID, Event: b.Event, Schema: b.Schema, Table: b.Table, Filter: b.FilterText, Select: b.Select})
	}
	return out
}

func (t *topic) stats() TopicStats {
	subs := *t.subs.Load()
	st := TopicStats{
		Topic: t.wire, Name: t.name, Private: t.private, Subscribers: len(subs),
		Presence: t.presenceCount(), MessagesIn: t.msgsIn.Load(), MessagesOut: t.msgsOut.Load(),
		LastActivity: time.Unix(0, t.lastActive.Load()).UTC(), Bindings: []BindingInfo{},
	}
	seen := map[int64]bool{}
	for _, s := range subs {
		for _, b := range bindingInfos(s) {
			if !seen[b.ID] {
				seen[b.ID] = true
				st.Bindings = append(st.Bindings, b)
			}
		}
	}
	return st
}

// allTopics returns every topic, taking each shard lock briefly.
func (h *Hub) allTopics() []*topic {
	var out []*topic
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for _, t := range sh.topics {
			out = append(out, t)
		}
		sh.mu.RUnlock()
	}
	return out
}

// Topics returns a snapshot of every channel on this node, sorted by topic.
func (h *Hub) Topics() []TopicStats {
	var out []TopicStats
	for _, t := range h.allTopics() {
		out = append(out, t.stats())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return !out[i].Private
	})
	return out
}

// Subscribers returns the channels named name (a bare name such as "room1"
// or a topic such as "realtime:room1"; public and private namespaces both)
// with their subscribers. ok is false when no such channel exists.
func (h *Hub) Subscribers(name string) (topics []TopicStats, subs []SubscriberStats, ok bool) {
	wire := name
	if len(wire) < len("realtime:") || wire[:len("realtime:")] != "realtime:" {
		wire = "realtime:" + name
	}
	keys := []string{TopicKey(wire, false), TopicKey(wire, true)}
	if wire != name {
		keys = append(keys, TopicKey(name, false)) // SSE-only topics such as "sse:12"
	}
	for _, key := range keys {
		t := h.lookup(key)
		if t == nil {
			continue
		}
		ok = true
		topics = append(topics, t.stats())
		for _, s := range *t.subs.Load() {
			subs = append(subs, s.stats())
		}
	}
	return topics, subs, ok
}

func (s *Subscription) stats() SubscriberStats {
	st := SubscriberStats{ID: s.ID, Sent: s.sent.Load(), NotSent: map[string]int64{}, Presence: s.PresenceEnabled(), Bindings: bindingInfos(s)}
	for _, r := range DropReasons() {
		st.NotSent[r.String()] = s.Dropped(r)
	}
	if id := s.Identity(); id != nil {
		st.Role, st.Sub = id.Role, id.Sub
	}
	if s.Perms != nil {
		st.Permissions = s.Perms()
	}
	if c := s.Conn; c != nil {
		st.ConnID, st.Transport, st.Version, st.RemoteAddr, st.Since = c.ID, c.Transport, c.Version, c.RemoteAddr, c.Since
		if c.QueuedBytes != nil {
			st.QueuedBytes = c.QueuedBytes()
		}
	}
	return st
}

// Disconnect closes the connection of the subscription or connection with
// the given id (ReasonAdmin). It reports whether one was found.
func (h *Hub) Disconnect(id uint64) bool {
	for _, t := range h.allTopics() {
		for _, s := range *t.subs.Load() {
			if (s.ID == id || (s.Conn != nil && s.Conn.ID == id)) && s.Conn != nil && s.Conn.Close != nil {
				s.Conn.Close(ReasonAdmin)
				return true
			}
		}
	}
	return false
}

// TapEvent is one message being fanned out, for the live tail.
type TapEvent struct {
	Time      time.Time `json:"time"`
	Topic     string    `json:"topic"`
	Kind      string    `json:"kind"` // broadcast, db_broadcast, presence, postgres_changes, system
	Event     string    `json:"event"`
	Bytes     int       `json:"bytes"`
	Delivered int       `json:"delivered"`
	Payload   string    `json:"payload,omitempty"` // at most 2 KiB
}

// OutTotals counts the frames fan-out queued to subscribers, by kind.
type OutTotals struct {
	// Broadcast counts broadcast frames.
	Broadcast int64
	// Presence counts presence_diff frames.
	Presence int64
	// PostgresChanges counts postgres_changes frames of live fan-out
	// (replays to a resuming subscriber are not counted).
	PostgresChanges int64
}

// MessagesOut returns the frames queued by fan-out since the hub was
// created, by kind. The counters are kept whether or not a tap is
// installed. Safe for concurrent use.
func (h *Hub) MessagesOut() OutTotals {
	return OutTotals{
		Broadcast:       h.out.broadcast.Load(),
		Presence:        h.out.presence.Load(),
		PostgresChanges: h.out.postgresChanges.Load(),
	}
}

// SetTap installs fn to observe every fan-out (nil removes it). fn runs on
// the fan-out goroutine and must not block. While no tap is installed,
// fan-out builds no TapEvent (nor the payload text it carries), so install
// one only while something watches. Safe for concurrent use; a fan-out
// already running may still call the previous tap.
func (h *Hub) SetTap(fn func(TapEvent)) {
	if fn == nil {
		h.tap.Store(nil)
		return
	}
	h.tap.Store(&fn)
}

func (h *Hub) emitTap(topic, kind, event string, payload []byte, delivered int) {
	p := h.tap.Load()
	if p == nil {
		return
	}
	ev := TapEvent{Time: time.Now().UTC(), Topic: topic, Kind: kind, Event: event, Bytes: len(payload), Delivered: delivered}
	if len(payload) <= 2048 {
		ev.Payload = string(payload)
	} else {
		ev.Payload = string(payload[:2048]) + "…"
	}
	(*p)(ev)
}
