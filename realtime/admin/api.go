package admin

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/decoder"
)

// writeJSON writes v as the JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// writeError writes {"error": msg} with status.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// Totals sums the channel list.
type Totals struct {
	Channels    int   `json:"channels"`
	Subscribers int   `json:"subscribers"`
	Presence    int   `json:"presence"`
	MessagesIn  int64 `json:"messages_in"`
	MessagesOut int64 `json:"messages_out"`
}

// ChannelList is the body of GET /admin/api/channels.
type ChannelList struct {
	Time     time.Time             `json:"time"`
	Totals   Totals                `json:"totals"`
	Channels []channels.TopicStats `json:"channels"`
}

// ChannelDetail is the body of GET /admin/api/channels/<name>. Channels
// holds the public and/or private channel of that name; Subscribers are
// those of both, sorted by id.
type ChannelDetail struct {
	Time        time.Time                  `json:"time"`
	Name        string                     `json:"name"`
	Channels    []channels.TopicStats      `json:"channels"`
	Subscribers []channels.SubscriberStats `json:"subscribers"`
	// Nodes are the channel on the other nodes of a cluster that answered
	// within 300 ms, by name; absent on a single node (docs/cluster.md
	// "Inspector").
	Nodes []NodeChannel `json:"nodes,omitempty"`
}

func (i *Inspector) handleChannels(w http.ResponseWriter, r *http.Request) {
	list := ChannelList{Time: time.Now().UTC(), Channels: i.hub.Topics()}
	if list.Channels == nil {
		list.Channels = []channels.TopicStats{}
	}
	// Keep the drop totals of /metrics fresh while someone is watching.
	i.sweepDrops(list.Channels)
	for _, t := range list.Channels {
		list.Totals.Channels++
		list.Totals.Subscribers += t.Subscribers
		list.Totals.Presence += t.Presence
		list.Totals.MessagesIn += t.MessagesIn
		list.Totals.MessagesOut += t.MessagesOut
	}
	writeJSON(w, http.StatusOK, list)
}

func (i *Inspector) handleChannel(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	topics, subs, ok := i.hub.Subscribers(name)
	nodes := i.peerChannels(r.Context(), name)
	if !ok && !anyChannel(nodes) {
		where := "on this node"
		if nodes != nil {
			where = "on any node that answered"
		}
		writeError(w, http.StatusNotFound, "no channel named "+strconv.Quote(name)+" "+where)
		return
	}
	topics, subs = dedupe(topics, subs)
	writeJSON(w, http.StatusOK, ChannelDetail{Time: time.Now().UTC(), Name: name, Channels: topics, Subscribers: subs, Nodes: nodes})
}

// dedupe drops repeated channels and subscribers (a full topic name can
// resolve to the same channel twice in Hub.Subscribers) and sorts the
// subscribers by id. It never returns nil slices.
func dedupe(topics []channels.TopicStats, subs []channels.SubscriberStats) ([]channels.TopicStats, []channels.SubscriberStats) {
	ts := make([]channels.TopicStats, 0, len(topics))
	seenTopic := make(map[string]bool, len(topics))
	for _, t := range topics {
		key := channels.TopicKey(t.Topic, t.Private)
		if !seenTopic[key] {
			seenTopic[key] = true
			ts = append(ts, t)
		}
	}
	ss := make([]channels.SubscriberStats, 0, len(subs))
	seenSub := make(map[uint64]bool, len(subs))
	for _, s := range subs {
		if !seenSub[s.ID] {
			seenSub[s.ID] = true
			ss = append(ss, s)
		}
	}
	sort.Slice(ss, func(a, b int) bool { return ss[a].ID < ss[b].ID })
	return ts, ss
}

// broadcastRequest is the body of POST /admin/api/channels/<name>/broadcast.
type broadcastRequest struct {
	Event   string          `json:"event"`
	Payload json.RawMessage `json:"payload"`
	Private bool            `json:"private"`
}

func (i *Inspector) handleBroadcast(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(i.cfg.MaxBroadcastBytes)+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "could not read the request body")
		return
	}
	if len(body) > i.cfg.MaxBroadcastBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "broadcast body over "+strconv.Itoa(i.cfg.MaxBroadcastBytes)+" bytes")
		return
	}
	req := broadcastRequest{}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, "body must be a JSON object {event, payload, private}: "+err.Error())
			return
		}
	}
	if req.Event == "" {
		req.Event = "admin_test"
	}
	payload := bytes.TrimSpace(req.Payload)
	switch {
	case len(payload) == 0 || string(payload) == "null":
		payload = []byte("{}")
	case payload[0] != '{':
		writeError(w, http.StatusBadRequest, "payload must be a JSON object")
		return
	}
	payload = compactJSON(payload)
	topic := name
	if !strings.HasPrefix(topic, "realtime:") {
		topic = "realtime:" + name
	}
	i.hub.BroadcastTo(topic, req.Private, &channels.Broadcast{Event: req.Event, Payload: payload})
	i.log.Info("admin broadcast", "topic", topic, "private", req.Private, "event", req.Event, "bytes", len(payload))
	writeJSON(w, http.StatusAccepted, map[string]any{"topic": topic, "private": req.Private, "event": req.Event})
}

// compactJSON returns p without insignificant whitespace (p is valid JSON).
func compactJSON(p []byte) []byte {
	var b bytes.Buffer
	if json.Compact(&b, p) != nil {
		return p
	}
	return b.Bytes()
}

func (i *Inspector) handleDisconnect(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "subscriber id must be a number")
		return
	}
	if !i.hub.Disconnect(id) {
		writeError(w, http.StatusNotFound, "no subscriber or connection with id "+strconv.FormatUint(id, 10))
		return
	}
	i.log.Info("admin disconnected a subscriber", "subscriber_id", id)
	writeJSON(w, http.StatusOK, map[string]any{"disconnected": id})
}

// Replication is the body of GET /admin/api/replication. Positions are
// LSNs ("0/16B3748") for the logical source and change-log ids otherwise.
type Replication struct {
	// Enabled is false when the service runs without a database; the
	// other fields are then zero.
	Enabled           bool       `json:"enabled"`
	Kind              string     `json:"kind,omitempty"`
	Slot              string     `json:"slot,omitempty"`
	Publication       string     `json:"publication,omitempty"`
	Connected         bool       `json:"connected"`
	ConnectedSince    *time.Time `json:"connected_since"`
	ReceivedPosition  string     `json:"received_position"`
	ConfirmedPosition string     `json:"confirmed_position"`
	ServerPosition    string     `json:"server_position"`
	LagBytes          int64      `json:"lag_bytes"`
	// LagSeconds is 0 when nothing is pending (lag_bytes 0); otherwise the
	// commit→fan-out latency of the newest delivered batch, or the age of
	// the last delivered commit when no batch was measured yet.
	LagSeconds float64 `json:"lag_seconds"`
	// LastFanoutSeconds is the commit→fan-out latency of the newest batch.
	LastFanoutSeconds float64    `json:"last_fanout_seconds"`
	LastCommitTime    *time.Time `json:"last_commit_time"`
	LastCommitAge     *float64   `json:"last_commit_age_seconds"`
	LastError         string     `json:"last_error"`
	LastErrorTime     *time.Time `json:"last_error_time"`
	Sessions          int64      `json:"sessions"`
	Transactions      int64      `json:"transactions"`
	Changes           int64      `json:"changes"`
	// VisibilityWaits counts batches that waited for their commits to be
	// visible (only the RLS live-row fallback asks: docs/protocol.md §4.5).
	VisibilityWaits int64 `json:"visibility_waits"`
	// RLS holds the row-check counters; absent without a database.
	RLS  *RLSStats `json:"rls,omitempty"`
	Time time.Time `json:"time"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// replication builds the replication view at now; ok is false without a
// source.
func (i *Inspector) replication(now time.Time) (Replication, bool) {
	rep := Replication{Time: now.UTC()}
	p := i.source.Load()
	if p == nil {
		return rep, false
	}
	st := (*p)()
	pos := func(v uint64) string {
		if st.Kind == "logical" {
			return decoder.LSN(v).String()
		}
		return strconv.FormatUint(v, 10)
	}
	rep.Enabled = true
	rep.Kind, rep.Slot, rep.Publication, rep.Connected = st.Kind, st.Slot, st.Publication, st.Connected
	rep.ConnectedSince = optTime(st.ConnectedSince)
	rep.ReceivedPosition, rep.ConfirmedPosition, rep.ServerPosition = pos(st.ReceivedPosition), pos(st.ConfirmedPosition), pos(st.ServerPosition)
	rep.LagBytes = st.LagBytes
	rep.LastFanoutSeconds = time.Duration(i.stats.lastFanout.Load()).Seconds()
	rep.LastCommitTime = optTime(st.LastCommitTime)
	if !st.LastCommitTime.IsZero() {
		age := max(now.Sub(st.LastCommitTime).Seconds(), 0)
		rep.LastCommitAge = &age
	}
	if st.LagBytes > 0 || st.ReceivedPosition > st.ConfirmedPosition {
		switch {
		case i.stats.lastFanout.Load() > 0:
			rep.LagSeconds = rep.LastFanoutSeconds
		case rep.LastCommitAge != nil:
			rep.LagSeconds = *rep.LastCommitAge
		}
	}
	rep.LastError, rep.LastErrorTime = st.LastError, optTime(st.LastErrorTime)
	rep.Sessions, rep.Transactions, rep.Changes = st.Sessions, st.Transactions, st.Changes
	rep.VisibilityWaits = st.VisibilityWaits
	if r, ok := i.rlsStats(); ok {
		rep.RLS = &r
	}
	return rep, true
}

func (i *Inspector) handleReplication(w http.ResponseWriter, r *http.Request) {
	rep, _ := i.replication(time.Now())
	writeJSON(w, http.StatusOK, rep)
}
