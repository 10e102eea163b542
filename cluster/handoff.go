package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/openrealtime/realtime/decoder"
)

// The change hand-off (docs/cluster.md "Change hand-off"): the node that
// holds a project's replication slot publishes every batch of decoded
// changes to the project's JetStream stream and confirms the slot only
// after the stream acknowledged them; every node consumes the stream in
// order and fans the changes out to its own subscribers.
const (
	// handoffAckWait bounds the wait for the stream's acknowledgements of
	// one publish of a batch; past it the holder publishes again or gives
	// the slot up (Publish).
	handoffAckWait = 3 * time.Second
	// handoffMaxAge and handoffMaxBytes bound what the stream keeps: long
	// enough for a node that restarts to catch up, never the source of
	// truth (PostgreSQL is).
	handoffMaxAge   = 2 * time.Minute
	handoffMaxBytes = 512 << 20
	// handoffDuplicates is the stream's de-duplication window of message
	// ids; beyond it consumers drop re-published changes by position.
	handoffDuplicates = time.Minute
	// handoffMaxChanges bounds the changes a consumer hands its sink at
	// once.
	handoffMaxChanges = 1000
)

// batchHeader names the header carrying "first last chunk chunks": the
// positions of a batch's first and last transaction and the chunk's index
// and count.
const batchHeader = "Rt-Batch"

// Handoff is one project's JetStream hand-off of decoded database changes.
// Publish runs on the holder's change source goroutine, Consume on one
// consumer goroutine; Ready and the counters are safe for concurrent use.
type Handoff struct {
	node        *Node
	js          jetstream.JetStream
	stream      string
	subject     string
	wakeSubject string         // announces new messages to the readers
	wake        chan struct{}  // capacity 1: a new message may be waiting
	fastSubject string         // batches announced before the stream holds them
	fast        chan *nats.Msg // this node's consumer's announced batches

	hintMu sync.Mutex      // guards hints
	hints  map[uint64]hint // first stream sequence of an announced batch → its hint

	ready    atomic.Bool   // the stream exists
	lastSeen atomic.Uint64 // the newest position the consumer delivered
}

// Handoff returns project ns's hand-off. Call Ensure (until it succeeds)
// before Publish.
func (n *Node) Handoff(ns string) (*Handoff, error) {
	if !ValidNamespace(ns) {
		return nil, fmt.Errorf("cluster: project ref %q cannot name a stream", ns)
	}
	js, err := jetstream.New(n.nc, jetstream.WithPublishAsyncMaxPending(1<<14))
	if err != nil {
		return nil, fmt.Errorf("cluster: JetStream: %w", err)
	}
	return &Handoff{node: n, js: js, stream: "RT_PG_" + ns, subject: "rt." + ns + ".pg",
		wakeSubject: "rt." + ns + ".pgnew", wake: make(chan struct{}, 1),
		fastSubject: "rt." + ns + ".pgfast", fast: make(chan *nats.Msg, fastQueue), hints: map[uint64]hint{}}, nil
}

// Ensure creates the project's stream, or updates its settings. database
// identifies the database the changes come from (its system identifier):
// a stream left by another database (a recreated one behind the same
// project) is emptied, since its positions mean nothing here. Ensure fails
// while JetStream is not reachable or not enabled, or (clustered) has no
// quorum yet.
func (h *Handoff) Ensure(ctx context.Context, database string) error {
	cfg := jetstream.StreamConfig{
		Name:        h.stream,
		Description: "decoded database changes, from the slot holder to every node",
		Subjects:    []string{h.subject},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      handoffMaxAge,
		MaxBytes:    handoffMaxBytes,
		Duplicates:  handoffDuplicates,
		Storage:     jetstream.FileStorage,
		Replicas:    h.node.cfg.replicas(),
		AllowDirect: true,
		Metadata:    map[string]string{"database": database},
	}
	s, err := h.js.Stream(ctx, h.stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		_, err = h.js.CreateStream(ctx, cfg)
	case err != nil:
	default:
		if was := s.CachedInfo().Config.Metadata["database"]; was != database {
			h.node.log.Warn("cluster: change stream held another database's changes; purged", "stream", h.stream, "was", was, "now", database)
			if err = s.Purge(ctx); err != nil {
				break
			}
		}
		_, err = h.js.UpdateStream(ctx, cfg)
	}
	if err != nil {
		return fmt.Errorf("cluster: create stream %s: %w", h.stream, err)
	}
	h.ready.Store(true)
	return nil
}

// EnsureLoop calls Ensure until it succeeds or ctx ends, 0.5 s apart,
// logging the first failure and then every tenth.
func (h *Handoff) EnsureLoop(ctx context.Context, database string) {
	for i := 0; ; i++ {
		// A request made before JetStream has a leader may go unanswered:
		// a short timeout retries it soon.
		ectx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := h.Ensure(ectx, database)
		cancel()
		if err == nil || ctx.Err() != nil {
			if err == nil && i > 0 {
				h.node.log.Info("cluster: change stream ready", "stream", h.stream, "attempts", i+1)
			}
			return
		}
		if i%10 == 0 {
			h.node.log.Warn("cluster: change stream not ready; no node reads the slot until it is", "stream", h.stream, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// cutOff reports whether this node is cut off from the other nodes while
// its stream needs a quorum of them: it can then neither publish nor read
// new changes. A stream of one replica may live on this node and go on.
func (h *Handoff) cutOff() bool {
	return h.node.cfg.replicas() >= 2 && h.node.Isolated()
}

// errNotReady is returned by Ready while the node cannot publish changes.
var errNotReady = errors.New("cluster: change stream not ready, NATS disconnected or cut off from the other nodes")

// Ready returns nil when this node may hold the slot: its stream exists, its
// NATS connection is up and it is not cut off from the other nodes. A
// change source calls it before each attempt to take the slot, so a node
// that cannot publish leaves it to others.
//
// A node that leads the stream while another replica is current leaves the
// slot to the others too: the holder's death then costs no stream leader
// election, JetStream's longest pause (docs/cluster.md "Change hand-off").
func (h *Handoff) Ready(ctx context.Context) error {
	if !h.ready.Load() || !h.node.nc.IsConnected() || h.cutOff() {
		return errNotReady
	}
	if h.node.cfg.replicas() < 2 {
		return nil
	}
	ictx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	s, err := h.js.Stream(ictx, h.stream)
	if err != nil {
		return fmt.Errorf("%w: stream info: %w", errNotReady, err)
	}
	if c := s.CachedInfo().Cluster; c != nil && c.Leader == h.node.Name() {
		for _, r := range c.Replicas {
			if r.Current && !r.Offline {
				return errStreamLeader
			}
		}
	}
	return nil
}

// errStreamLeader is returned by Ready on the stream's leader while another
// replica could hold the slot.
var errStreamLeader = errors.New("cluster: this node leads the change stream; another node holds the slot")

// Publish publishes batch to the stream and returns once every chunk was
// acknowledged (publishBatch: chunked to the connection's payload limit,
// message ids derived from the batch's positions, published again while
// the stream elects a leader), then wakes the readers. It is the waiting
// form of a Pipeline's publishing, without the announcement on core NATS.
// announced reports relations the source announced since the last batch
// (consumers then drop cached facts of the table); it may be nil.
func (h *Handoff) Publish(ctx context.Context, batch []decoder.Change, announced func(*decoder.Relation) bool) error {
	if len(batch) == 0 {
		return nil
	}
	s := &sent{body: decoder.AppendBatch(nil, batch, announced), first: batch[0].Position, last: batch[len(batch)-1].Position}
	firstSeq, lastSeq, err := h.publishBatch(ctx, s)
	if err != nil {
		return err
	}
	h.announce(firstSeq, lastSeq, s.last)
	return nil
}

// Publishing again after a missing acknowledgement (Publish): for at most
// handoffRepublishFor after the first attempt (JetStream's longest leader
// election, 9 s, and a margin), handoffRepublishPause apart.
const (
	handoffRepublishFor   = 12 * time.Second
	handoffRepublishPause = 250 * time.Millisecond
)

// keepPublishing says why the holder should stop publishing a batch first
// tried at start, or "" when it should try again: its NATS connection is up,
// the time is within handoffRepublishFor, and it hears from a majority of
// the nodes, itself included (Node.hearsMajority). A holder cut off from the
// majority stops once its heartbeats expire (3 s), so a node of the
// majority, whose stream can acknowledge, takes the slot.
func (h *Handoff) keepPublishing(start time.Time) string {
	switch {
	case !h.node.nc.IsConnected():
		return "NATS disconnected"
	case time.Since(start) >= handoffRepublishFor:
		return "no acknowledgement for " + handoffRepublishFor.String()
	}
	if ok, live, size := h.node.hearsMajority(); !ok {
		return fmt.Sprintf("hears %d of %d nodes", live, size)
	}
	return ""
}

// signal wakes this node's reader.
func (h *Handoff) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// batchMeta is the parsed batch header of one message.
type batchMeta struct {
	first, last uint64
	chunk, of   int
}

func parseBatchHeader(v string) (batchMeta, error) {
	f := strings.Fields(v)
	if len(f) != 4 {
		return batchMeta{}, fmt.Errorf("cluster: bad %s header %q", batchHeader, v)
	}
	var m batchMeta
	var err [4]error
	m.first, err[0] = strconv.ParseUint(f[0], 10, 64)
	m.last, err[1] = strconv.ParseUint(f[1], 10, 64)
	m.chunk, err[2] = strconv.Atoi(f[2])
	m.of, err[3] = strconv.Atoi(f[3])
	if e := errors.Join(err[:]...); e != nil || m.of < 1 || m.chunk < 0 || m.chunk >= m.of || m.first > m.last {
		return batchMeta{}, fmt.Errorf("cluster: bad %s header %q", batchHeader, v)
	}
	return m, nil
}

// NodeName returns the name of the node the hand-off belongs to.
func (h *Handoff) NodeName() string { return h.node.Name() }

// LastPosition returns the newest change position the consumer delivered.
func (h *Handoff) LastPosition() uint64 { return h.lastSeen.Load() }
