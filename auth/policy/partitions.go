package policy

import (
	"context"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
)

// partitionSet is which inserted_at values realtime.messages' partitions
// accept: an image probe is judged only when its row would have had a
// partition (the insert probe fails without one: ErrMissingPartition).
type partitionSet struct {
	// def is set when a default partition takes every other value.
	def bool
	// ranges are the range partitions' bounds.
	ranges []timeRange
}

// timeRange is one range partition's bounds, from inclusive, to exclusive;
// a zero time is unbounded on its side.
type timeRange struct{ from, to time.Time }

// covers reports whether a row with inserted_at at has a partition.
func (ps partitionSet) covers(at time.Time) bool {
	if ps.def {
		return true
	}
	for _, r := range ps.ranges {
		if (r.from.IsZero() || !at.Before(r.from)) && (r.to.IsZero() || at.Before(r.to)) {
			return true
		}
	}
	return false
}

// rangeBoundRe matches a range partition's bound as pg_get_expr prints it.
var rangeBoundRe = regexp.MustCompile(`^FOR VALUES FROM \((MINVALUE|'[^']*')\) TO \((MAXVALUE|'[^']*')\)$`)

// loadPartitions reads the partitions' bounds (the transaction's datestyle
// is ISO). ok is false when one cannot be read: a partition that is itself
// partitioned, or a bound this parser does not know.
func loadPartitions(ctx context.Context, tx pgx.Tx) (ps partitionSet, ok bool, err error) {
	rows, err := tx.Query(ctx, partitionsSQL)
	if err != nil {
		return ps, false, classify("image partitions", err)
	}
	ok = true
	for rows.Next() {
		var kind string
		var bound *string
		if err := rows.Scan(&kind, &bound); err != nil {
			rows.Close()
			return ps, false, classify("image partitions", err)
		}
		if kind != "r" || bound == nil {
			ok = false
			continue
		}
		if *bound == "DEFAULT" {
			ps.def = true
			continue
		}
		m := rangeBoundRe.FindStringSubmatch(*bound)
		if m == nil {
			ok = false
			continue
		}
		from, ok1 := parseBound(m[1])
		to, ok2 := parseBound(m[2])
		if !ok1 || !ok2 {
			ok = false
			continue
		}
		ps.ranges = append(ps.ranges, timeRange{from, to})
	}
	if err := rows.Err(); err != nil {
		return ps, false, classify("image partitions", err)
	}
	return ps, ok, nil
}

// parseBound parses one side of a range bound: MINVALUE/MAXVALUE (zero
// time) or a quoted ISO timestamp.
func parseBound(s string) (time.Time, bool) {
	if s == "MINVALUE" || s == "MAXVALUE" {
		return time.Time{}, true
	}
	t, err := time.Parse("2006-01-02 15:04:05.999999", s[1:len(s)-1])
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}
