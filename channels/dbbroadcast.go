package channels

import (
	"encoding/hex"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/openrealtime/realtime/decoder"
)

// IsMessagesRelation reports whether rel is realtime.messages or one of its
// day partitions: the rows of Broadcast from the database.
func IsMessagesRelation(rel *decoder.Relation) bool {
	return rel != nil && rel.Schema == "realtime" && (rel.Table == "messages" || strings.HasPrefix(rel.Table, "messages_"))
}

// DBBroadcasts turns committed realtime.messages rows into broadcasts to
// the subscribers of realtime:<topic> in the namespace of the row's private
// flag (docs/protocol.md §9.3). Safe for concurrent use.
type DBBroadcasts struct {
	hub        *Hub
	maxPayload int
	log        *slog.Logger
	// OnMessage, when set, observes every broadcast published (the
	// inspector's live tail). Set before use.
	OnMessage func(topic string, private bool, b *Broadcast)

	published, invalid, tooLarge atomic.Int64
}

// NewDBBroadcasts returns a router publishing to hub; payloads over
// maxPayload bytes (0: no limit) are dropped.
func NewDBBroadcasts(hub *Hub, maxPayload int, log *slog.Logger) *DBBroadcasts {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &DBBroadcasts{hub: hub, maxPayload: maxPayload, log: log}
}

// Stats returns the messages published, dropped as invalid (a required
// column NULL) and dropped as too large.
func (d *DBBroadcasts) Stats() (published, invalid, tooLarge int64) {
	return d.published.Load(), d.invalid.Load(), d.tooLarge.Load()
}

// Deliver publishes c when it is an INSERT into realtime.messages; other
// kinds are ignored. The broadcast goes to this node's subscribers only:
// every node of a cluster reads the database itself (docs/cluster.md
// "Database changes"). It returns after the broadcast is queued to every
// subscriber, so a source may then confirm c's position.
func (d *DBBroadcasts) Deliver(c *decoder.Change) {
	if c.Kind != decoder.Insert || c.New == nil {
		return
	}
	col := func(name string) *decoder.Value {
		i := c.Rel.ColumnIndex(name)
		if i < 0 || i >= len(c.New) || c.New[i].Null || c.New[i].Absent {
			return nil
		}
		return &c.New[i]
	}
	if o := col("origin"); o != nil && o.Text == "client" {
		return // a persisted client broadcast, already delivered live
	}
	topic, event, id, private := col("topic"), col("event"), col("id"), col("private")
	if topic == nil || event == nil || id == nil || private == nil {
		d.invalid.Add(1)
		d.log.Warn("database broadcast dropped: topic, event, id and private are required", "table", c.Rel.Table)
		return
	}
	b := &Broadcast{ID: id.Text, Event: event.Text, Meta: []byte(`{"id":"` + id.Text + `"}`)}
	if bin := col("binary_payload"); bin != nil {
		raw, err := hex.DecodeString(strings.TrimPrefix(bin.Text, `\x`))
		if err != nil {
			d.invalid.Add(1)
			d.log.Warn("database broadcast dropped: bad binary_payload", "topic", topic.Text, "err", err)
			return
		}
		b.Payload, b.Binary = raw, true
	} else if p := col("payload"); p != nil {
		b.Payload = []byte(p.Text)
	} else {
		d.invalid.Add(1)
		d.log.Warn("database broadcast dropped: no payload", "topic", topic.Text)
		return
	}
	if d.maxPayload > 0 && len(b.Payload) > d.maxPayload {
		d.tooLarge.Add(1)
		d.log.Info("database broadcast over the payload limit dropped", "topic", topic.Text, "bytes", len(b.Payload))
		return
	}
	priv := private.Text == "t" || private.Text == "true"
	d.hub.broadcastLocal("realtime:"+topic.Text, priv, b)
	d.published.Add(1)
	if d.OnMessage != nil {
		d.OnMessage(topic.Text, priv, b)
	}
}
