package projects

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
)

// HeaderRef is the header a gateway sets to name the project; it wins over
// the host.
const HeaderRef = "X-Project-Ref"

// Texts of the refusals (docs/projects.md "Routing").
const (
	msgTenantNotFound     = "Tenant not found"
	msgTenantNotFoundREST = "Tenant not found in database"
	msgSuspended          = "Realtime was disabled for this tenant"
	msgRestarting         = "Realtime is restarting, please standby"
)

// Resolve returns the project a request names: the X-Project-Ref header,
// else the host's first label when the host has a dot and is not an IP
// address. named is false when the request names none (e.g. localhost or
// 127.0.0.1), i.e. it is for the default project.
func Resolve(r *http.Request) (ref string, named bool) {
	if h := strings.TrimSpace(r.Header.Get(HeaderRef)); h != "" {
		return strings.ToLower(h), true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" || net.ParseIP(strings.Trim(host, "[]")) != nil {
		return "", false
	}
	label, _, found := strings.Cut(host, ".")
	if !found {
		return "", false
	}
	return label, true
}

// endpoint is the kind of endpoint a path is, for the refusal shapes.
type endpoint int

const (
	endpointOther endpoint = iota
	endpointWebSocket
	endpointSSE
	endpointREST
)

func endpointOf(path string) endpoint {
	switch {
	case strings.HasSuffix(path, "/websocket"):
		return endpointWebSocket
	case strings.HasSuffix(path, "/sse"):
		return endpointSSE
	case strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/realtime/v1/api/"):
		return endpointREST
	}
	return endpointOther
}

// refuse answers a request the project cannot serve: REST endpoints as
// {"message": …} (status 401 for an unknown project, as Supabase), the
// others as {"error": …} like the service's other refusals.
func refuse(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	key := "error"
	if endpointOf(r.URL.Path) == endpointREST {
		key = "message"
		if msg == msgTenantNotFound {
			status, msg = http.StatusUnauthorized, msgTenantNotFoundREST
		}
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{key: msg})
}
