package projects

// Overview is one project's line in the inspector's project overview
// (docs/projects.md "Inspector").
type Overview struct {
	// Ref is the project reference.
	Ref string `json:"ref"`
	// State is running, suspended, restarting or failed.
	State string `json:"state"`
	// Connections are its open WebSocket connections and SSE streams.
	Connections int `json:"connections"`
	// LimitHits counts its events refused by events/s limits.
	LimitHits int64 `json:"limit_hits"`
	// Default marks the flag-configured project.
	Default bool `json:"default,omitempty"`
}

// Overviewer is a Stack that reports its figures for the overview.
type Overviewer interface {
	// Overview fills the figures of o (Connections, LimitHits).
	Overview(o *Overview)
}

var stateNames = map[state]string{
	stateRunning: "running", stateSuspended: "suspended", stateRestarting: "restarting", stateFailed: "failed",
}

// Overview returns every configured project's line, sorted by ref.
func (r *Registry) Overview() []Overview {
	table := *r.table.Load()
	out := make([]Overview, 0, len(table))
	for _, ref := range sortedRefs(table) {
		e := table[ref]
		o := Overview{Ref: ref, State: stateNames[e.state]}
		if ov, ok := e.stack.(Overviewer); ok && e.state == stateRunning {
			ov.Overview(&o)
		}
		out = append(out, o)
	}
	return out
}
