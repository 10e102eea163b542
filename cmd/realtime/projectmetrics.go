package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// stackCollectors are the Prometheus collectors of one stack: transport,
// inspector (deliveries, drops, lag) and database broadcast counters.
func stackCollectors(st *stack) []prometheus.Collector {
	cs := []prometheus.Collector{st.srv.MetricsCollector(), st.insp.Collector()}
	if st.feed != nil && st.feed.dbb != nil {
		cs = append(cs, dbBroadcastCollector{st.feed.dbb})
	}
	return cs
}

// projectMetrics registers a stack's collectors under a project label
// (docs/projects.md "Metrics"); the label's values are the configured
// refs only, since a stack's series are removed when it closes.
type projectMetrics struct {
	reg prometheus.Registerer // the service's registry
	log *slog.Logger
}

// add registers st's series labelled project=ref; the returned function
// unregisters them.
func (m projectMetrics) add(ref string, st *stack) (remove func()) {
	if m.reg == nil {
		return func() {}
	}
	wrapped := prometheus.WrapRegistererWith(prometheus.Labels{"project": ref}, m.reg)
	cs := stackCollectors(st)
	var done []prometheus.Collector
	for _, c := range cs {
		if err := wrapped.Register(c); err != nil {
			m.log.Warn("project metrics not registered", "project", ref, "err", err)
			continue
		}
		done = append(done, c)
	}
	return func() {
		for _, c := range done {
			wrapped.Unregister(c)
		}
	}
}
