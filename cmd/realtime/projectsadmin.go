package main

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/openrealtime/realtime/projects"
)

// Overview fills the project's figures for the inspector's overview.
func (s *projectStack) Overview(o *projects.Overview) {
	st := s.st.srv.Stats()
	o.Connections, o.LimitHits = st.Connections, st.LimitHits
}

// projectsOverview serves GET /admin/api/projects: every project with its
// state, connections and limit hits, the default project first
// (docs/projects.md "Inspector"). It takes the admin token.
func projectsOverview(reg *projects.Registry, def *stack, defRef, token string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"admin token required"}`))
			return
		}
		list := reg.Overview()
		if def != nil {
			st := def.srv.Stats()
			d := projects.Overview{Ref: defRef, State: "running", Connections: st.Connections, LimitHits: st.LimitHits, Default: true}
			list = append([]projects.Overview{d}, list...)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(map[string]any{"projects": list})
	})
}
