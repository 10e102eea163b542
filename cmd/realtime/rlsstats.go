package main

import (
	"github.com/openrealtime/realtime/auth/rls"
	"github.com/openrealtime/realtime/realtime/admin"
)

// rlsStatsOf returns the inspector's view of c's row-check counters
// (/admin/api/replication and /metrics); verify is --rls-verify.
func rlsStatsOf(c *rls.Checker, verify float64) func() admin.RLSStats {
	return func() admin.RLSStats {
		st := c.Stats()
		return admin.RLSStats{
			CompiledGroups: st.CompiledGroups,
			SQLGroups:      st.SQLGroups,
			VerifyFraction: verify,
			VerifiedGroups: st.VerifiedGroups,
			Disagreements:  st.Disagreements,
			LiveReads:      st.LiveReads,
		}
	}
}
