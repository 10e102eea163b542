package channels

// Broadcast is a user message sent to every subscriber of a topic. It is
// immutable once published.
type Broadcast struct {
	// Event is the user event name.
	Event string
	// Payload is JSON text, or raw bytes when Binary is set.
	Payload []byte
	// Binary marks a raw byte payload.
	Binary bool
	// Meta is optional metadata (a JSON object) for binary-capable clients.
	Meta []byte
	// Verbatim, when set, is the whole broadcast object as its sender
	// wrote it (JSON text); every subscriber then gets a text frame
	// carrying it unchanged (docs/protocol.md §5.1).
	Verbatim []byte
	// ID is the realtime.messages id of a database broadcast ("" for
	// others); replay de-duplicates by it.
	ID string
}

// Broadcast publishes b to the topic of from (from's namespace), skipping
// from itself unless it asked for self delivery. It returns after the
// message has been queued to this node's subscribers.
func (h *Hub) Broadcast(from *Subscription, b *Broadcast) {
	key := TopicKey(from.Topic, from.Private)
	if t := h.lookup(key); t != nil {
		t.msgsIn.Add(1)
	}
	h.broker.Publish(&Envelope{Kind: EnvelopeBroadcast, Topic: key, Broadcast: b, Origin: from.ID})
}

// BroadcastTo publishes b to a topic without a sending subscription (REST,
// admin, database). topic is the full topic, e.g. "realtime:room1".
func (h *Hub) BroadcastTo(topic string, private bool, b *Broadcast) {
	key := TopicKey(topic, private)
	if t := h.lookup(key); t != nil {
		t.msgsIn.Add(1)
	}
	h.broker.Publish(&Envelope{Kind: EnvelopeBroadcast, Topic: key, Broadcast: b})
}

// broadcastLocal delivers b to this node's subscribers of a topic without
// the broker: the message already reaches every node another way.
func (h *Hub) broadcastLocal(topic string, private bool, b *Broadcast) {
	key := TopicKey(topic, private)
	if t := h.lookup(key); t != nil {
		t.msgsIn.Add(1)
	}
	h.deliverEnvelope(&Envelope{Kind: EnvelopeBroadcast, Topic: key, Broadcast: b})
}

func (t *topic) fanOutBroadcast(b *Broadcast, origin uint64) (delivered int) {
	var cache encodeCache
	build := func(e Encoder) (Frame, bool) { return e.EncodeBroadcast(t.wire, b) }
	subs := *t.subs.Load()
	direct := len(subs) <= maxDirectTopic
	var wb WriteBatch // the direct writes, made together
	for _, s := range subs {
		if (s.ID == origin && !s.Self) || s.muted.Load() {
			continue
		}
		if b.ID != "" && s.replayedLive(b.ID) {
			continue
		}
		f, ok := cache.get(s.Encoder, build)
		if !ok {
			s.Drop(DropEncoding)
			continue
		}
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
