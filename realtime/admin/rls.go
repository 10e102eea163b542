package admin

import (
	"github.com/prometheus/client_golang/prometheus"
)

// RLSStats are the row-check counters of the RLS evaluator
// (docs/protocol.md §4.5), shown in the replication view and exported as
// metrics.
type RLSStats struct {
	// CompiledGroups counts claims groups judged in Go.
	CompiledGroups int64 `json:"compiled_groups"`
	// SQLGroups counts claims groups judged by PostgreSQL.
	SQLGroups int64 `json:"sql_groups"`
	// VerifyFraction is --rls-verify: the share of compiled groups re-checked.
	VerifyFraction float64 `json:"verify_fraction"`
	// VerifiedGroups counts compiled groups re-checked by PostgreSQL.
	VerifiedGroups int64 `json:"verified_groups"`
	// Disagreements counts verified groups where Go and PostgreSQL differed.
	Disagreements int64 `json:"disagreements"`
	// LiveReads counts live-row fallback queries (unchanged TOASTed values
	// a policy reads).
	LiveReads int64 `json:"live_reads"`
}

// SetRLS installs the getter of the RLS counters shown by
// /admin/api/replication (field rls) and exported as metrics; nil removes
// it. It may be called at any time.
func (i *Inspector) SetRLS(stats func() RLSStats) {
	if stats == nil {
		i.rls.Store(nil)
		return
	}
	i.rls.Store(&stats)
}

// rlsStats returns the RLS counters; ok is false without a getter.
func (i *Inspector) rlsStats() (RLSStats, bool) {
	p := i.rls.Load()
	if p == nil {
		return RLSStats{}, false
	}
	return (*p)(), true
}

// rlsDescs are the RLS counter metrics.
type rlsDescs struct {
	compiled, sql, verified, disagreements, live, verifyFraction *prometheus.Desc
}

func newRLSDescs() rlsDescs {
	return rlsDescs{
		compiled: prometheus.NewDesc("realtime_pg_rls_compiled_groups_total",
			"Claims groups of a batch whose row checks were judged in Go (compiled policies).", nil, nil),
		sql: prometheus.NewDesc("realtime_pg_rls_sql_groups_total",
			"Claims groups of a batch whose row checks were judged by PostgreSQL.", nil, nil),
		verified: prometheus.NewDesc("realtime_pg_rls_verified_groups_total",
			"Compiled groups re-checked by PostgreSQL (--rls-verify).", nil, nil),
		disagreements: prometheus.NewDesc("realtime_pg_rls_verify_disagreements_total",
			"Re-checked groups where the compiled decision and PostgreSQL's differed (--rls-verify).", nil, nil),
		live: prometheus.NewDesc("realtime_pg_rls_live_reads_total",
			"Live-row fallback queries: unchanged TOASTed values a policy reads, read from the live row.", nil, nil),
		verifyFraction: prometheus.NewDesc("realtime_pg_rls_verify_fraction",
			"The --rls-verify fraction of compiled groups re-checked by PostgreSQL.", nil, nil),
	}
}

func (d rlsDescs) describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{d.compiled, d.sql, d.verified, d.disagreements, d.live, d.verifyFraction} {
		ch <- x
	}
}

// collect exports the counters when a getter is installed.
func (d rlsDescs) collect(i *Inspector, ch chan<- prometheus.Metric) {
	st, ok := i.rlsStats()
	if !ok {
		return
	}
	c := prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(d.compiled, c, float64(st.CompiledGroups))
	ch <- prometheus.MustNewConstMetric(d.sql, c, float64(st.SQLGroups))
	ch <- prometheus.MustNewConstMetric(d.verified, c, float64(st.VerifiedGroups))
	ch <- prometheus.MustNewConstMetric(d.disagreements, c, float64(st.Disagreements))
	ch <- prometheus.MustNewConstMetric(d.live, c, float64(st.LiveReads))
	ch <- prometheus.MustNewConstMetric(d.verifyFraction, prometheus.GaugeValue, st.VerifyFraction)
}
