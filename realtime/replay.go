package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/openrealtime/realtime/auth/policy"
	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// Replayer reads stored broadcasts for config.broadcast.replay
// (docs/protocol.md §9.4); *policy.Prober implements it.
type Replayer interface {
	// Replay returns up to limit of the newest private broadcasts of topic
	// since the given time, oldest first.
	Replay(ctx context.Context, topic string, since time.Time, limit int) ([]policy.Message, error)
}

// replayParams is a validated config.broadcast.replay.
type replayParams struct {
	since time.Time
	limit int
}

// Replay error reasons (docs/protocol.md §7.5).
const (
	replayPublic  = "UnableToReplayMessages: Replay is not allowed for public channels"
	replayInvalid = "UnableToReplayMessages: Replay params are not valid"
	replayFailed  = "UnableToReplayMessages: Realtime was unable to replay messages"
)

// parseReplay validates raw: nil params and "" when there is no replay
// (absent or not an object), else the params or the join error reason.
func parseReplay(raw json.RawMessage) (*replayParams, string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, ""
	}
	var p struct {
		Since *json.Number `json:"since"`
		Limit *json.Number `json:"limit"`
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&p); err != nil || p.Since == nil {
		return nil, replayInvalid
	}
	since, err := p.Since.Int64()
	if err != nil {
		return nil, replayInvalid
	}
	limit := int64(25)
	if p.Limit != nil {
		if limit, err = p.Limit.Int64(); err != nil {
			return nil, replayInvalid
		}
	}
	return &replayParams{since: time.UnixMilli(since), limit: int(min(max(limit, 1), 25))}, ""
}

// readReplay reads the stored broadcasts of ch and returns the function
// that queues them, marked replayed, skipping any already delivered live;
// or the join error reason when they could not be read.
func (ss *session) readReplay(ch *channelState, rp *replayParams) (send func(), why string) {
	var msgs []policy.Message
	if r, ok := ss.srv.cfg.Private.(Replayer); ok {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		var err error
		msgs, err = r.Replay(ctx, ch.sub.Name, rp.since, rp.limit)
		cancel()
		if err != nil {
			ss.logger().Warn("replay failed", "topic", ch.sub.Topic, "err", err)
			return nil, replayFailed
		}
	}
	ids := make([]string, len(msgs))
	for i := range msgs {
		ids[i] = msgs[i].ID
	}
	keep := ch.sub.FinishReplay(ids)
	return func() { ss.sendReplay(ch, msgs, keep) }, ""
}

// sendReplay queues the kept replayed messages to ch.
func (ss *session) sendReplay(ch *channelState, msgs []policy.Message, keep []bool) {
	for i, m := range msgs {
		if !keep[i] {
			continue
		}
		meta := phoenix.AppendJSONString([]byte(`{"replayed":true,"id":`), m.ID)
		meta = append(meta, '}')
		b := &channels.Broadcast{ID: m.ID, Event: m.Event, Payload: m.Payload, Binary: m.Binary, Meta: meta}
		if !m.Binary {
			b.Verbatim = broadcastObject(b)
		}
		if f, ok := ss.enc.EncodeBroadcast(ch.sub.Topic, b); ok {
			ch.sub.Deliver(f)
		}
	}
}

// replicationReadyWait bounds how long a join with
// config.broadcast.replication_ready waits for the change source.
const replicationReadyWait = 60 * time.Second

// announceReplicationReady sends the system event of
// config.broadcast.replication_ready (docs/protocol.md §3.5) once the
// change source streams; if it does not within replicationReadyWait the
// channel is closed with the reference server's text.
func (ss *session) announceReplicationReady(ch *channelState) {
	ready := ss.srv.cfg.ReplicationReady
	ss.srv.wg.Add(1)
	go func() {
		defer ss.srv.wg.Done()
		var up <-chan struct{}
		if ready != nil {
			up = ready()
		}
		t := time.NewTimer(replicationReadyWait)
		defer t.Stop()
		select {
		case <-up:
			if ss.current(ch) {
				ss.out.Enqueue(ss.t.systemFrame(ch, systemPayload("system", "ok", "Replication connection established", ch.sub.Name)))
			}
		case <-t.C:
			ss.closeChannel(ch, "Replication connection was not established in time", channels.ReasonServerShutdown)
		case <-ss.out.done:
		}
	}()
}
