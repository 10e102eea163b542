package rls

import (
	"context"
	"errors"
	"sync"

	"github.com/openrealtime/realtime/channels"
)

// minSplitRows is the number of image rows below which a batch's SQL groups
// go in one message: splitting costs a second connection and transaction,
// more than judging a few rows.
const minSplitRows = 256

// runParallel sends units in up to c.parallel messages at once, on separate
// connections, split so that each message carries about the same number of
// rows (docs/protocol.md §4.5). Units are independent (each sets its own
// role, and claims where it reads them), so their order does not matter. When a message
// fails transiently the whole call fails (the batch is redelivered); a
// transient error is preferred over another one.
func (c *Checker) runParallel(ctx context.Context, units []*sqlUnit) error {
	parts := splitJobs(units, c.parallel)
	if len(parts) <= 1 {
		return c.runAll(ctx, units)
	}
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for k, part := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = c.runAll(ctx, part)
		}()
	}
	wg.Wait()
	var first error
	for _, err := range errs {
		if errors.Is(err, channels.ErrTransient) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// runAll sends units in one message; when a group alone is denied for
// good, the units after it are sent again without it, and when a shared
// unit fails its groups are sent again each alone (so that only the one
// that fails is denied).
func (c *Checker) runAll(ctx context.Context, units []*sqlUnit) error {
	for len(units) > 0 {
		failed, err := c.runUnits(ctx, units)
		if err != nil {
			return err
		}
		if failed < 0 {
			return nil
		}
		var alone []*sqlUnit
		if units[failed].shared {
			alone = units[failed].alone()
		}
		units = append(append(units[:failed:failed], alone...), units[failed+1:]...)
	}
	return nil
}

// counted is what splitJobs splits: a group, or a unit of groups.
type counted interface{ rowCount() int }

// rowCount is the number of images the job asks about.
func (j *sqlJob) rowCount() int { return len(j.rows) }

// splitJobs cuts jobs into at most n consecutive parts of about equal
// rows; one part when there are fewer than minSplitRows rows in all.
func splitJobs[T counted](jobs []T, n int) [][]T {
	total := 0
	for _, j := range jobs {
		total += j.rowCount()
	}
	if n <= 1 || len(jobs) < 2 || total < minSplitRows {
		return [][]T{jobs}
	}
	n = min(n, len(jobs))
	parts := make([][]T, 0, n)
	start, acc := 0, 0 // the open part is jobs[start:], holding acc rows so far
	for i, j := range jobs {
		r := j.rowCount()
		// The open part's share of the rows; close it before j when j
		// would take it further past the share than it now falls short.
		if share := total * (len(parts) + 1) / n; len(parts) < n-1 && i > start && acc+r-share > share-acc {
			parts = append(parts, jobs[start:i:i])
			start = i
		}
		acc += r
	}
	return append(parts, jobs[start:])
}
