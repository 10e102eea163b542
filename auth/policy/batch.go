package policy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Batching limits (docs/protocol.md §9.2 "Batched read probes").
const (
	// maxReadBatch is the most read probes evaluated in one transaction.
	maxReadBatch = 128
	// readQueue is how many read probes may wait for a batch.
	readQueue = 4096
	// batchTimeout bounds one batch's round trip.
	batchTimeout = 15 * time.Second
)

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
// and one round trip per batch (docs/protocol.md §9.2). Workers start when
// probes are queued and exit when the queue is empty, so an idle Prober
// holds no goroutine.
type readBatcher struct {
	p *Prober
	// jobs holds queued probes; workers receive from it.
	jobs chan *readJob
	// slots holds one token per running worker (capacity = the bound).
	slots chan struct{}
}

// newReadBatcher returns a batcher running at most workers batches at once.
func newReadBatcher(p *Prober, workers int) *readBatcher {
	return &readBatcher{p: p, jobs: make(chan *readJob, readQueue), slots: make(chan struct{}, workers)}
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
	b.spawn()
	select {
	case res := <-j.done:
		return res.broadcast, res.presence, res.err
	case <-ctx.Done():
		return false, false, fmt.Errorf("%w: read probe: %v", ErrUnavailable, ctx.Err())
	}
}

// spawn starts a worker when a slot is free.
func (b *readBatcher) spawn() {
	select {
	case b.slots <- struct{}{}:
		go b.work()
	default:
	}
}

// work runs batches until the queue is empty; it holds a slot.
func (b *readBatcher) work() {
	for {
		batch := b.take()
		if len(batch) > 0 {
			b.run(batch)
			continue
		}
		<-b.slots
		// A probe queued after take found the queue empty but before the
		// slot was freed saw every slot taken: pick it up.
		if len(b.jobs) == 0 {
			return
		}
		select {
		case b.slots <- struct{}{}:
		default:
			return // another worker is running and will see it
		}
	}
}

// take drains up to maxReadBatch live jobs without waiting.
func (b *readBatcher) take() []*readJob {
	var batch []*readJob
	for len(batch) < maxReadBatch {
		select {
		case j := <-b.jobs:
			if j.ctx.Err() == nil {
				batch = append(batch, j)
			}
		default:
			return batch
		}
	}
	return batch
}

// run answers every job of batch: on images of the probe rows when the
// policies allow it, the rest (or, when that fails, all) in one pipelined
// insert round trip, or, when that fails as a whole (the probe rows could
// not be inserted, the connection broke), one probe at a time so each gets
// its own answer.
func (b *readBatcher) run(batch []*readJob) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	if b.p.image != nil {
		batch = b.runImage(ctx, batch)
		if len(batch) == 0 {
			return
		}
	}
	res, err := b.p.pipelineRead(ctx, batch)
	if err == nil {
		for i, j := range batch {
			j.done <- res[i]
		}
		return
	}
	for _, j := range batch {
		var r readResult
		r.broadcast, r.presence, r.err = b.p.readOne(j.ctx, j.r)
		j.done <- r
	}
}

// runImage answers the jobs of batch that image probes can judge and
// returns the others. A batch that saw the catalog change is tried once
// more with a fresh catalog.
func (b *readBatcher) runImage(ctx context.Context, batch []*readJob) []*readJob {
	res, rest, err := b.p.imageRead(ctx, batch)
	if errors.Is(err, errCatalogChanged) {
		res, rest, err = b.p.imageRead(ctx, batch)
	}
	if err != nil {
		return batch
	}
	left := make([]*readJob, 0, len(rest))
	k := 0
	for i, j := range batch {
		if k < len(rest) && rest[k] == i {
			left = append(left, j)
			k++
			continue
		}
		j.done <- res[i]
	}
	readPaths.image.Add(int64(len(batch) - len(left)))
	return left
}
