package policy

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// maxReadBatch is the most read probes evaluated in one transaction.
const maxReadBatch = 128

// readWorkers bounds the transactions evaluating read probes at once.
const readWorkers = 4

// readJob is one read probe waiting for a batch.
type readJob struct {
	ctx  context.Context
	r    *Request
	bid  string // id of the broadcast probe row
	pid  string // id of the presence probe row ("" without presence)
	done chan readResult
}

// readResult is the answer to one read probe.
type readResult struct {
	broadcast, presence bool
	err                 error
}

// readBatcher evaluates concurrent read probes together: one transaction
// and one round trip per batch instead of five per probe (docs/protocol.md
// §9.2). Workers start when probes are queued and exit when the queue is
// empty, so an idle Prober holds no goroutine.
type readBatcher struct {
	p    *Prober
	jobs chan *readJob // queued probes; owned by the workers
	// workers counts running workers; a worker that finds the queue empty
	// exits, and rechecks after leaving so no queued probe is stranded.
	workers chanCounter
}

// chanCounter is a counter bounded by readWorkers, kept in a buffered
// channel: a token in the channel is a running worker.
type chanCounter chan struct{}

// tryAcquire takes a worker slot when one is free.
func (c chanCounter) tryAcquire() bool {
	select {
	case c <- struct{}{}:
		return true
	default:
		return false
	}
}

// release frees a worker slot.
func (c chanCounter) release() { <-c }

func newReadBatcher(p *Prober) *readBatcher {
	return &readBatcher{p: p, jobs: make(chan *readJob, 4096), workers: make(chanCounter, readWorkers)}
}

// read queues r and waits for its answer.
func (b *readBatcher) read(ctx context.Context, r *Request) (broadcast, presence bool, err error) {
	j := &readJob{ctx: ctx, r: r, bid: uuid.NewString(), done: make(chan readResult, 1)}
	if r.Presence {
		j.pid = uuid.NewString()
	}
	select {
	case b.jobs <- j:
	case <-ctx.Done():
		return false, false, fmt.Errorf("%w: queue read probe: %v", ErrUnavailable, ctx.Err())
	}
	if b.workers.tryAcquire() {
		go b.work()
	}
	select {
	case res := <-j.done:
		return res.broadcast, res.presence, res.err
	case <-ctx.Done():
		return false, false, fmt.Errorf("%w: read probe: %v", ErrUnavailable, ctx.Err())
	}
}

// work runs batches until the queue is empty; it holds a worker slot.
func (b *readBatcher) work() {
	for {
		var batch []*readJob
	drain:
		for len(batch) < maxReadBatch {
			select {
			case j := <-b.jobs:
				if j.ctx.Err() == nil {
					batch = append(batch, j)
				}
			default:
				break drain
			}
		}
		if len(batch) > 0 {
			b.run(batch)
			continue
		}
		b.workers.release()
		// A probe queued after the drain but before the release saw every
		// slot taken; pick it up.
		if len(b.jobs) == 0 || !b.workers.tryAcquire() {
			return
		}
	}
}

// run evaluates batch, answering every job. After a database error the
// statements that followed it were skipped: the failing job gets the
// error and the rest run again in a new batch.
func (b *readBatcher) run(batch []*readJob) {
	for len(batch) > 0 {
		next, whole, err := b.runOnce(batch)
		switch {
		case err == nil:
			return
		case whole:
			for _, j := range batch[next:] {
				j.done <- readResult{err: err}
			}
			return
		default:
			batch[next].done <- readResult{err: err}
			batch = batch[next+1:]
		}
	}
}

// runOnce evaluates batch in one transaction and one round trip: the probe
// rows of every job inserted as the pool user, then for each job its
// context set (role, claims, topic, headers, transaction-local) and its
// rows selected back; everything rolled back. The jobs before next are
// answered; on failure err is job next's own (a policy raised) or, when
// whole, that of every job from next on.
func (b *readBatcher) runOnce(batch []*readJob) (next int, whole bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	tx, err := b.p.pool.Begin(ctx)
	if err != nil {
		return 0, true, fmt.Errorf("%w: begin read probe: %v", ErrUnavailable, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var topics, exts, ids []string
	for _, j := range batch {
		topics, exts, ids = append(topics, j.r.Topic), append(exts, "broadcast"), append(ids, j.bid)
		if j.pid != "" {
			topics, exts, ids = append(topics, j.r.Topic), append(exts, "presence"), append(ids, j.pid)
		}
	}
	q := &pgx.Batch{}
	q.Queue(`INSERT INTO realtime.messages (topic, extension, updated_at, inserted_at, id)
SELECT t, e, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', i::uuid
FROM unnest($1::text[], $2::text[], $3::text[]) AS u(t, e, i)`, topics, exts, ids)
	for _, j := range batch {
		q.Queue(contextSQL, contextArgs(j.r)...)
		q.Queue("SELECT id::text FROM realtime.messages WHERE id = ANY($1::uuid[])", []string{j.bid, orNil(j.pid)})
	}
	br := tx.SendBatch(ctx, q)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return 0, true, classify("insert read probe", err)
	}
	for i, j := range batch {
		if _, err := br.Exec(); err != nil {
			return i, !isPgError(err), classify("set probe context", err)
		}
		rows, err := br.Query()
		if err != nil {
			return i, !isPgError(err), classify("select read probe", err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return i, !isPgError(err), classify("select read probe", err)
		}
		var res readResult
		for _, id := range got {
			switch id {
			case j.bid:
				res.broadcast = true
			case j.pid:
				res.presence = j.pid != ""
			}
		}
		j.done <- res
	}
	return len(batch), false, nil
}

// isPgError reports whether err came from the server (a statement failed)
// rather than from the connection.
func isPgError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe)
}

// orNil is s, or the nil uuid text when s is empty (no presence row).
func orNil(s string) string {
	if s == "" {
		return "00000000-0000-0000-0000-000000000000"
	}
	return s
}
