package projects

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// cdcType is the extension type of a project's database settings; the
// legacy name "postgres" is accepted too.
const cdcType = "postgres_cdc_rls"

// maxTenantBody bounds a management API request body.
const maxTenantBody = 1 << 20

// APIConfig configures the management API.
type APIConfig struct {
	// Secret verifies HS256/384/512 bearer JWTs (--api-jwt-secret).
	Secret []byte
	// AdminToken is accepted as the bearer token too (--admin-token).
	AdminToken string
}

// API serves Supabase's tenant management API at /api/tenants
// (docs/projects.md "Management API").
type API struct {
	m   *Manager
	cfg APIConfig
	mux *http.ServeMux
}

// NewAPI returns the management API of m.
func NewAPI(m *Manager, cfg APIConfig) *API {
	a := &API{m: m, cfg: cfg, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /api/tenants", a.list)
	a.mux.HandleFunc("POST /api/tenants", a.upsert)
	a.mux.HandleFunc("GET /api/tenants/{id}", a.get)
	a.mux.HandleFunc("PUT /api/tenants/{id}", a.upsert)
	a.mux.HandleFunc("PATCH /api/tenants/{id}", a.upsert)
	a.mux.HandleFunc("DELETE /api/tenants/{id}", a.delete)
	a.mux.HandleFunc("POST /api/tenants/{id}/reload", a.reload)
	a.mux.HandleFunc("GET /api/tenants/{id}/health", a.health)
	return a
}

// ServeHTTP authorizes the request, then serves it. A missing or bad
// token is answered 403 with an empty body, as Supabase.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(r) {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// authorized accepts the admin token or a JWT signed with the API secret
// (exp and iat are checked when present).
func (a *API) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" {
		return false
	}
	if a.cfg.AdminToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.cfg.AdminToken)) == 1 {
		return true
	}
	if len(a.cfg.Secret) == 0 {
		return false
	}
	_, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return a.cfg.Secret, nil },
		jwt.WithValidMethods([]string{"HS256", "HS384", "HS512"}), jwt.WithIssuedAt())
	return err == nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "not found"})
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	recs := a.m.list()
	data := make([]map[string]any, 0, len(recs))
	for _, rec := range recs {
		data = append(data, tenantJSON(rec))
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	rec, ok := a.m.lookup(r.PathValue("id"))
	if !ok {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": tenantJSON(rec)})
}

// upsert creates or updates a project from {"tenant": {...}}: keyed by the
// path on PUT/PATCH, by external_id on POST. Only the fields given change;
// new extension settings replace the old ones.
func (a *API) upsert(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Tenant map[string]json.RawMessage `json:"tenant"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxTenantBody)).Decode(&body); err != nil || body.Tenant == nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": map[string][]string{"tenant": {"can't be blank"}}})
		return
	}
	ref := r.PathValue("id")
	if ref == "" {
		json.Unmarshal(body.Tenant["external_id"], &ref)
	}
	now := time.Now().UTC().Truncate(time.Second)
	rec, exists := a.m.lookup(ref)
	if !exists {
		rec = Record{Project: Project{Ref: ref}, InsertedAt: now}
	}
	rec.UpdatedAt = now
	if errs := applyTenant(&rec, body.Tenant); len(errs) > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": errs})
		return
	}
	rec.Project.Normalize()
	if err := rec.Project.Validate(); err != nil {
		var fe FieldErrors
		if errors.As(err, &fe) {
			if v, ok := fe[fieldRef]; ok {
				delete(fe, fieldRef)
				fe["external_id"] = v
			}
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": fe})
			return
		}
	}
	created, err := a.m.upsert(r.Context(), rec)
	var fe FieldErrors
	switch {
	case errors.As(err, &fe):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": fe})
		return
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": err.Error()})
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/api/tenants/"+rec.Project.Ref)
	}
	writeJSON(w, status, map[string]any{"data": tenantJSON(rec)})
}

func (a *API) delete(w http.ResponseWriter, r *http.Request) {
	var fe FieldErrors
	switch err := a.m.remove(r.Context(), r.PathValue("id")); {
	case errors.As(err, &fe):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": fe})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": err.Error()})
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *API) reload(w http.ResponseWriter, r *http.Request) {
	if err := a.m.restart(r.Context(), r.PathValue("id")); err != nil {
		notFound(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) health(w http.ResponseWriter, r *http.Request) {
	running, h, ok := a.m.reg.health(r.PathValue("id"))
	if !ok {
		notFound(w)
		return
	}
	nodes := 0 // nodes serving the project: this one, while it runs
	if running {
		nodes = 1
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"healthy": running, "db_connected": h.Streaming, "replication_connected": h.Streaming,
		"connected_cluster": nodes, "region": "local", "node": "local",
	}})
}

// applyTenant sets the fields of t on rec; the result maps field names to
// messages for the 422 answer.
func applyTenant(rec *Record, t map[string]json.RawMessage) map[string]any {
	errs := map[string]any{}
	p := &rec.Project
	str := func(name string, dst *string) {
		if raw, ok := t[name]; ok && json.Unmarshal(raw, dst) != nil {
			errs[name] = []string{msgInvalid}
		}
	}
	num := func(name string, dst *int) {
		if raw, ok := t[name]; ok && string(raw) != "null" && json.Unmarshal(raw, dst) != nil {
			errs[name] = []string{msgInvalid}
		}
	}
	flag := func(name string, dst *bool) {
		if raw, ok := t[name]; ok && json.Unmarshal(raw, dst) != nil {
			errs[name] = []string{msgInvalid}
		}
	}
	str("jwt_secret", &p.JWTSecret)
	if raw, ok := t["jwt_jwks"]; ok && string(raw) != "null" {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			p.JWTJWKS = s
		} else {
			p.JWTJWKS = string(raw) // the JWK Set object itself
		}
	}
	num("max_concurrent_users", &p.MaxConcurrentUsers)
	num("max_channels_per_client", &p.MaxChannelsPerClient)
	num("max_joins_per_second", &p.MaxJoinsPerSecond)
	num("max_events_per_second", &p.MaxEventsPerSecond)
	num("max_bytes_per_second", &p.MaxBytesPerSecond)
	num("max_presence_events_per_second", &p.MaxPresenceEventsPerSecond)
	num("max_payload_size_in_kb", &p.MaxPayloadSizeInKB)
	num("max_client_presence_events_per_window", &p.MaxClientPresenceEventsPerWindow)
	num("client_presence_window_ms", &p.ClientPresenceWindowMS)
	flag("private_only", &p.PrivateOnly)
	flag("suspend", &p.Suspend)
	if raw, ok := t["extensions"]; ok {
		var exts []struct {
			Type     string         `json:"type"`
			Settings map[string]any `json:"settings"`
		}
		if err := json.Unmarshal(raw, &exts); err != nil {
			errs["extensions"] = []string{msgInvalid}
			return errs
		}
		p.DBURL, rec.Settings = "", nil
		for _, e := range exts {
			if e.Type != cdcType && e.Type != "postgres" {
				continue
			}
			if msgs := applySettings(p, e.Settings); len(msgs) > 0 {
				errs["extensions"] = msgs
				return errs
			}
			rec.Settings = e.Settings
		}
	}
	return errs
}

// applySettings builds the project's database URL, slot, publication and
// source from postgres_cdc_rls settings; it returns the problems found.
func applySettings(p *Project, s map[string]any) []string {
	var msgs []string
	get := func(k string, required bool) string {
		v, ok := s[k]
		sv, isStr := v.(string)
		switch {
		case !ok || v == nil || (isStr && sv == ""):
			if required {
				msgs = append(msgs, k+" "+msgBlank)
			}
		case !isStr:
			msgs = append(msgs, k+" "+msgInvalid)
		}
		return sv
	}
	host, port, name := get("db_host", true), get("db_port", true), get("db_name", true)
	user, pass := get("db_user", true), get("db_password", true)
	get("region", true)
	if port != "" && !isPort(port) {
		msgs = append(msgs, "db_port "+msgInvalid)
	}
	ssl := true
	if v, ok := s["ssl_enforced"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			msgs = append(msgs, "ssl_enforced "+msgInvalid)
		}
		ssl = b
	}
	if len(msgs) > 0 {
		return msgs
	}
	mode := "require"
	if !ssl {
		mode = "disable"
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, pass), Host: net.JoinHostPort(host, port), Path: "/" + name, RawQuery: "sslmode=" + mode}
	p.DBURL = u.String()
	p.Slot, p.Publication, p.Source = get("slot_name", false), get("publication", false), get("source", false)
	return msgs
}

func isPort(s string) bool {
	var n int
	_, err := fmt.Sscanf(s, "%d", &n)
	return err == nil && n > 0 && n < 65536 && fmt.Sprint(n) == s
}

// tenantJSON is Supabase's tenant object for rec, without secrets or
// db_password.
func tenantJSON(rec Record) map[string]any {
	p := rec.Project
	settings := map[string]any{}
	for k, v := range rec.Settings {
		if k != "db_password" {
			settings[k] = v
		}
	}
	settings["slot_name"], settings["publication"], settings["source"] = p.Slot, p.Publication, p.Source
	exts := []map[string]any{}
	if p.DBURL != "" {
		exts = append(exts, map[string]any{"type": cdcType, "inserted_at": rec.InsertedAt, "updated_at": rec.UpdatedAt, "settings": settings})
	}
	return map[string]any{
		"id":                                    uuid.NewSHA1(uuid.NameSpaceURL, []byte("realtime-project:"+p.Ref)).String(),
		"external_id":                           p.Ref,
		"name":                                  p.Ref,
		"max_concurrent_users":                  p.MaxConcurrentUsers,
		"max_channels_per_client":               p.MaxChannelsPerClient,
		"max_events_per_second":                 p.MaxEventsPerSecond,
		"max_joins_per_second":                  p.MaxJoinsPerSecond,
		"max_bytes_per_second":                  p.MaxBytesPerSecond,
		"max_presence_events_per_second":        p.MaxPresenceEventsPerSecond,
		"max_payload_size_in_kb":                p.MaxPayloadSizeInKB,
		"max_client_presence_events_per_window": p.MaxClientPresenceEventsPerWindow,
		"client_presence_window_ms":             p.ClientPresenceWindowMS,
		"private_only":                          p.PrivateOnly,
		"suspend":                               p.Suspend,
		"presence_enabled":                      false,
		"inserted_at":                           rec.InsertedAt,
		"extensions":                            exts,
	}
}
