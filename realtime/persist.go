package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"time"
)

// Persister stores client broadcasts sent with persist (docs/protocol.md
// §9.5); *policy.Prober implements it.
type Persister interface {
	// Store keeps one broadcast of a private topic for replay, for ttl
	// when ttl > 0.
	Store(ctx context.Context, topic, event string, payload []byte, binary bool, ttl time.Duration) (id string, err error)
}

// persistRequest is a decoded persist option: absent, forever, or a TTL.
type persistRequest struct {
	on  bool
	ttl time.Duration
}

// persistFromMeta reads {"persist":true} or {"persist":{"ttl":N}} (N
// seconds) from kind-3 metadata.
func persistFromMeta(meta []byte) persistRequest {
	meta = bytes.TrimSpace(meta)
	if len(meta) == 0 || meta[0] != '{' {
		return persistRequest{}
	}
	var m struct {
		Persist json.RawMessage `json:"persist"`
	}
	if json.Unmarshal(meta, &m) != nil {
		return persistRequest{}
	}
	return persistFromRaw(m.Persist)
}

func persistFromRaw(raw json.RawMessage) persistRequest {
	raw = bytes.TrimSpace(raw)
	switch {
	case string(raw) == "true":
		return persistRequest{on: true}
	case len(raw) > 0 && raw[0] == '{':
		var o struct {
			TTL json.Number `json:"ttl"`
		}
		if json.Unmarshal(raw, &o) != nil {
			return persistRequest{on: true}
		}
		n, _ := o.TTL.Float64()
		return persistRequest{on: true, ttl: time.Duration(n * float64(time.Second))}
	}
	return persistRequest{}
}

// persistFromQuery reads ?persist=true or ?persist[ttl]=N (N seconds).
func persistFromQuery(q url.Values) persistRequest {
	if v := q.Get("persist[ttl]"); v != "" {
		n, _ := strconv.ParseFloat(v, 64)
		return persistRequest{on: true, ttl: time.Duration(n * float64(time.Second))}
	}
	if q.Get("persist") == "true" {
		return persistRequest{on: true}
	}
	return persistRequest{}
}

// persistErrPublic is the error of persist on a public channel.
const persistErrPublic = "persist is only available on private channels"

// persistErrFailed is the error when storing failed.
const persistErrFailed = "Realtime was unable to store the message"

// store keeps a persisted broadcast; it returns the client-facing error
// text, "" on success.
func (s *Server) store(name, event string, payload []byte, binary bool, pr persistRequest) string {
	ps, ok := s.cfg.Private.(Persister)
	if !ok {
		return persistErrFailed
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if _, err := ps.Store(ctx, name, event, payload, binary, pr.ttl); err != nil {
		s.log.Warn("persisting a broadcast failed", "topic", name, "err", err)
		return persistErrFailed
	}
	return ""
}
