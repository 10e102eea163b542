package realtime

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// setCORS allows browser apps on other origins to call the REST endpoints.
func setCORS(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Headers", "authorization, apikey, x-api-key, x-client-info, content-type")
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
}

func (s *Server) handlePreflight(w http.ResponseWriter, r *http.Request) {
	setCORS(w)
	w.WriteHeader(http.StatusNoContent)
}

func writeMessage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func writeErrors(w http.ResponseWriter, status int, errs map[string][]string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": errs})
}

// restAuth sets the CORS headers of a REST call and authenticates it with
// its credentials' token (docs/protocol.md §5.2, §5.3). When it fails it
// has answered 401 and ok is false.
func (s *Server) restAuth(w http.ResponseWriter, r *http.Request) (claims *auth.Claims, ok bool) {
	setCORS(w)
	v, err := s.verify(readCredentials(r).token())
	if err != nil {
		s.log.Info("REST broadcast refused", "err", err)
		writeMessage(w, http.StatusUnauthorized, "Unauthorized")
		return nil, false
	}
	return v.claims, true
}

// handleBroadcastBatch serves POST /api/broadcast (docs/protocol.md §5.2).
func (s *Server) handleBroadcastBatch(w http.ResponseWriter, r *http.Request) {
	claims, ok := s.restAuth(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBodyBytes+1))
	if err != nil || int64(len(body)) > s.cfg.MaxBodyBytes {
		writeErrors(w, http.StatusRequestEntityTooLarge, map[string][]string{"messages": {"request body too large"}})
		return
	}
	var req struct {
		Messages []struct {
			Topic   *string         `json:"topic"`
			Event   *string         `json:"event"`
			Payload json.RawMessage `json:"payload"`
			Private flexBool        `json:"private"`
			ID      json.RawMessage `json:"id"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Messages == nil {
		writeErrors(w, http.StatusUnprocessableEntity, map[string][]string{"messages": {"can't be blank"}})
		return
	}
	errs := map[string][]string{}
	for i, m := range req.Messages {
		switch {
		case m.Topic == nil || *m.Topic == "":
			errs["messages"] = append(errs["messages"], "message "+strconv.Itoa(i)+": topic can't be blank")
		case m.Event == nil:
			errs["messages"] = append(errs["messages"], "message "+strconv.Itoa(i)+": event can't be blank")
		case !jsonObject(m.Payload):
			errs["messages"] = append(errs["messages"], "message "+strconv.Itoa(i)+": payload must be an object")
		case len(m.Payload) > s.limits().MaxPayloadBytes:
			errs["payload"] = append(errs["payload"], "Payload size exceeds tenant limit")
		}
	}
	if len(errs) > 0 {
		writeErrors(w, http.StatusUnprocessableEntity, errs)
		return
	}
	if !s.allowEvents(len(req.Messages)) {
		s.metrics.limitHit()
		writeMessage(w, http.StatusTooManyRequests, msgRESTRateLimit)
		return
	}
	probed := map[string]bool{}
	for _, m := range req.Messages {
		private := bool(m.Private)
		if private && !s.restCanWrite(r, claims, *m.Topic, probed) {
			continue // silently dropped, as the real server does
		}
		obj := []byte(`{"payload":`)
		obj = append(obj, m.Payload...)
		obj = append(obj, `,"event":`...)
		obj = phoenix.AppendJSONString(obj, *m.Event)
		obj = append(obj, `,"type":"broadcast"`...)
		if id := bytes.TrimSpace(m.ID); len(id) > 0 && string(id) != "null" {
			obj = append(obj, `,"meta":{"id":`...)
			obj = append(obj, id...)
			obj = append(obj, '}')
		}
		obj = append(obj, '}')
		s.hub.BroadcastTo(topicPrefix+*m.Topic, private, &channels.Broadcast{Event: *m.Event, Payload: m.Payload, Verbatim: obj})
		s.metrics.broadcast()
	}
	w.WriteHeader(http.StatusAccepted)
}

// handleBroadcastEvent serves POST /api/broadcast/<channel>/events/<event>
// (docs/protocol.md §5.3).
func (s *Server) handleBroadcastEvent(w http.ResponseWriter, r *http.Request) {
	claims, ok := s.restAuth(w, r)
	if !ok {
		return
	}
	binary := false
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := mime.ParseMediaType(ct)
		switch mt {
		case "application/json":
		case "application/octet-stream":
			binary = true
		default:
			writeJSONError(w, http.StatusUnsupportedMediaType, "Unsupported Media Type. Use application/json or application/octet-stream")
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(s.limits().MaxPayloadBytes)+1))
	if err != nil {
		writeMessage(w, http.StatusBadRequest, "could not read the request body")
		return
	}
	if len(body) > s.limits().MaxPayloadBytes {
		writeErrors(w, http.StatusUnprocessableEntity, map[string][]string{"payload": {"Payload size exceeds tenant limit"}})
		return
	}
	if !binary {
		body = bytes.TrimSpace(body)
		switch {
		case len(body) == 0:
			body = []byte("{}")
		case !json.Valid(body):
			writeErrors(w, http.StatusUnprocessableEntity, map[string][]string{"payload": {"is invalid JSON"}})
			return
		case body[0] != '{':
			body = append(append([]byte(`{"_json":`), body...), '}')
		}
	}
	if !s.allowEvents(1) {
		s.metrics.limitHit()
		writeMessage(w, http.StatusTooManyRequests, msgRESTRateLimit)
		return
	}
	private := strings.EqualFold(r.URL.Query().Get("private"), "true")
	channel, event := r.PathValue("channel"), r.PathValue("event")
	if private && !s.restCanWrite(r, claims, channel, nil) {
		writeMessage(w, http.StatusForbidden, "Unauthorized")
		return
	}
	if pr := persistFromQuery(r.URL.Query()); pr.on {
		why := persistErrPublic
		status := http.StatusUnprocessableEntity
		if private {
			why, status = s.store(channel, event, body, binary, pr), http.StatusInternalServerError
		}
		if why != "" {
			writeMessage(w, status, why)
			return
		}
	}
	s.hub.BroadcastTo(topicPrefix+channel, private, &channels.Broadcast{Event: event, Payload: body, Binary: binary})
	s.metrics.broadcast()
	w.WriteHeader(http.StatusAccepted)
}
