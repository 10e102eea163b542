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

// runParallel sends jobs in up to c.parallel messages at once, on separate
// connections, the groups split so that each message carries about the same
// number of rows (docs/protocol.md §4.5). Groups are independent (each sets
// its own role and claims), so their order does not matter. When a message
// fails transiently the whole call fails (the batch is redelivered); a
// transient error is preferred over another one.
func (c *Checker) runParallel(ctx context.Context, jobs []*sqlJob) error {
	parts := splitJobs(jobs, c.parallel)
	if len(parts) <= 1 {
		return c.runAll(ctx, jobs)
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

// runAll sends jobs in one message; when a group is denied for good, the
// groups after it are sent again without it.
func (c *Checker) runAll(ctx context.Context, jobs []*sqlJob) error {
	for len(jobs) > 0 {
		failed, err := c.runJobs(ctx, jobs)
		if err != nil {
			return err
		}
		if failed < 0 {
			return nil
		}
		jobs = append(jobs[:failed:failed], jobs[failed+1:]...)
	}
	return nil
}

// splitJobs cuts jobs into at most n consecutive parts of about equal
// rows; one part when there are fewer than minSplitRows rows in all.
func splitJobs(jobs []*sqlJob, n int) [][]*sqlJob {
	total := 0
	for _, j := range jobs {
		total += len(j.rows)
	}
	if n <= 1 || len(jobs) < 2 || total < minSplitRows {
		return [][]*sqlJob{jobs}
	}
	n = min(n, len(jobs))
	parts := make([][]*sqlJob, 0, n)
	start, acc := 0, 0 // the open part is jobs[start:], holding acc rows so far
	for i, j := range jobs {
		r := len(j.rows)
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
