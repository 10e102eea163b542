package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/auth/policy"
	"github.com/openrealtime/realtime/auth/rls"
	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/cluster"
	"github.com/openrealtime/realtime/decoder"
	"github.com/openrealtime/realtime/internal/realtimeschema"
	"github.com/openrealtime/realtime/realtime/pglitebridge"
)

// catalogPoll is how often the catalog is checked for privilege and policy
// changes.
const catalogPoll = 500 * time.Millisecond

// pgFeed is a running postgres_changes pipeline: a change source feeding
// channels.PGChanges, with rls.Checker answering its database questions.
type pgFeed struct {
	// streaming is closed the first time the source streams, i.e. once the
	// slot (or change table) exists and changes are being captured.
	streaming chan struct{}
	once      sync.Once

	*channels.PGChanges
	// Checker answers the pipeline's database questions (its Stats count
	// compiled, SQL and verified row checks).
	Checker *rls.Checker
	source  decoder.Source
	// prober evaluates private channel policies and dbb routes database
	// broadcasts; both nil when the realtime schema is unusable.
	prober *policy.Prober
	dbb    *channels.DBBroadcasts
	pool   *pgxpool.Pool
	bridge *pglitebridge.Bridge // the browser bridge, for a pglite-bridge:// --db-url
	// cl is the change hand-off of a cluster node, nil on a single node.
	cl     *clusterFeed
	cancel context.CancelFunc
	done   chan struct{}
}

// Close stops the source (it confirms what was delivered) and the pool.
func (f *pgFeed) Close() {
	f.cancel()
	<-f.done
	f.pool.Close()
	if f.bridge != nil {
		f.bridge.Close()
	}
}

// status is the change feed's state for the inspector and health checks.
func (f *pgFeed) status() decoder.Status {
	st := f.source.Status()
	if f.cl != nil {
		return f.cl.status(st)
	}
	return st
}

// handoff reports whether this node gets the project's database changes
// through the cluster's change hand-off: clustered, --cluster-handoff (the
// default) and a logical source. A notify source has no slot to share:
// every node reads the change table itself.
func (o *options) handoff() bool {
	return o.cluster != nil && o.ClusterHandoff && o.Source != "notify"
}

// effectiveSlot is the replication slot the logical source reads: in a
// cluster without the change hand-off each node has its own
// (docs/cluster.md "Database changes").
func effectiveSlot(o *options) string {
	if o.cluster != nil && !o.handoff() {
		return cluster.SlotName(o.Slot, o.cluster.Name())
	}
	return o.Slot
}

// probeWorkers bounds the read-probe batches running at once: half of
// the feed pool's connections (docs/protocol.md §9.2).
const probeWorkers = 4

// startFeed starts the change source and pipeline when a database is
// configured; it returns nil without one. onDelivery, when set, observes
// every fanned-out batch (metrics).
func startFeed(ctx context.Context, o *options, ref string, log *slog.Logger, hub *channels.Hub, verifier *auth.Verifier, onDelivery func(channels.DeliveryStats)) (*pgFeed, error) {
	if o.DBURL == "" {
		return nil, nil
	}
	dbURL, bridge, err := openBridge(o, log, verifier)
	if err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("parse --db-url: %w", err)
	}
	if bridge != nil {
		dialBridge(pcfg, bridge)
	}
	// Simple protocol only: no named statements, no session state, so the
	// same code is safe on PGlite's shared session.
	pcfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	pcfg.MaxConns = 8
	if o.Source == "notify" {
		pcfg.MaxConns = 2
	}
	pcfg.MinConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	// PGlite runs one query at a time: split row checks and refresh the
	// catalog ahead of expiry only for PostgreSQL.
	parallel, notify := rls.DefaultParallel, o.Source == "notify"
	if notify {
		parallel = 1
	}
	checker := rls.NewChecker(rls.CheckerConfig{Pool: pool, Publication: o.Publication, Logger: log, Verify: o.RLSVerify,
		Parallel: parallel, NoRefreshAhead: notify})
	pg := channels.NewPGChanges(channels.PGConfig{
		Hub: hub, Auth: checker, Logger: log,
		ReplayCount: o.SSEReplayCount, ReplayAge: o.SSEReplayAge, ReplayBytes: o.SSEReplayBytes,
		OnDelivery: onDelivery, ClassBudget: o.FanoutClassBudget,
	})

	f := &pgFeed{PGChanges: pg, Checker: checker, pool: pool, bridge: bridge, done: make(chan struct{}), streaming: make(chan struct{})}
	var extraPubs []string
	schema := setupRealtimeSchema(ctx, o, pool, log)
	if schema != nil {
		f.prober = policy.NewProber(pool)
		if bridge == nil {
			// PostgreSQL itself: batch concurrent read probes, half the
			// pool at most (docs/protocol.md §9.2 "Batched read probes").
			f.prober = policy.NewBatchingProber(pool, probeWorkers)
		}
		f.dbb = channels.NewDBBroadcasts(hub, o.MaxPayloadBytes, log)
		extraPubs = []string{realtimeschema.Publication}
	}
	if o.handoff() {
		// Changes reach this node through the project's stream
		// (docs/cluster.md "Change hand-off").
		ho, err := o.cluster.Handoff(ref)
		if err != nil {
			pool.Close()
			return nil, err
		}
		f.cl = &clusterFeed{handoff: ho, announced: map[*decoder.Relation]bool{}}
	}
	var src decoder.Source
	// onState tells subscribers when changes stop and flow again, and marks
	// the feed streaming the first time.
	onState := func(up bool) {
		if up {
			pg.SetReplayBase(src.Status().ConfirmedPosition)
			f.once.Do(func() { close(f.streaming) })
		}
		pg.SourceState(up)
	}
	// onRelation drops cached privileges, table facts and the publication's
	// table list after DDL.
	onRelation := func(r *decoder.Relation) { checker.Invalidate(r.Schema, r.Table) }
	src = newSource(o, dbURL, extraPubs, log, onState, onRelation, f.cl)
	fctx, cancel := context.WithCancel(context.Background())
	f.source, f.cancel = src, cancel
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		// Privilege and policy changes reach cached answers and live
		// bindings within a poll (docs/protocol.md §4.5).
		checker.WatchCatalog(fctx, catalogPoll, func() { pg.Recheck(fctx) })
	}()
	go func() {
		defer close(f.done)
		defer func() { <-watched }()
		// realtime.messages rows are database broadcasts; the rest are
		// postgres_changes. Both are delivered before the batch is confirmed.
		sink := func(ctx context.Context, batch []decoder.Change) error {
			return pg.Process(ctx, splitMessages(batch, f.dbb))
		}
		if bridge != nil {
			sink = newRedeliveryFilter(sink).Process
		}
		if f.cl != nil {
			// The node's own fan-out takes the stream's changes; the
			// source's sink publishes them.
			fanout := sink
			consumed := make(chan struct{})
			defer func() { <-consumed }()
			go func() {
				defer close(consumed)
				f.cl.consume(fctx, pool, o.Slot, log, fanout, onRelation, pg.SetReplayBase, func(up bool) {
					if up {
						f.once.Do(func() { close(f.streaming) })
					}
					pg.SourceState(up)
				})
			}()
			sink = f.cl.publish
		}
		if schema != nil {
			// The realtime.messages publication must exist before the
			// source streams it.
			select {
			case <-schema.done:
			case <-fctx.Done():
				return
			}
		}
		if err := src.Run(fctx, sink); err != nil {
			log.Error("change source stopped", "err", err)
		}
	}()
	return f, nil
}

// newSource returns the change source of o.Source: logical decoding on
// o.DBURL, or the change table (the notify source) on dbURL, which is the
// bridge's address for a browser PGlite.
func newSource(o *options, dbURL string, extraPubs []string, log *slog.Logger, onState func(bool), onRelation func(*decoder.Relation), cl *clusterFeed) decoder.Source {
	if o.Source == "notify" {
		return decoder.NewChangeTable(decoder.ChangeTableConfig{
			DBURL:             dbURL,
			Publication:       o.Publication,
			ExtraPublications: extraPubs,
			PollInterval:      o.PollInterval,
			Retention:         o.Retention,
			Logger:            log,
			OnState:           onState,
			OnRelation:        onRelation,
		})
	}
	cfg := decoder.LogicalConfig{
		DBURL:             o.DBURL,
		Slot:              effectiveSlot(o),
		Publication:       o.Publication,
		ExtraPublications: extraPubs,
		Logger:            log,
		OnState:           onState,
		OnRelation:        onRelation,
	}
	if cl != nil {
		cl.logicalConfig(&cfg)
	}
	l := decoder.NewLogical(cfg)
	if cl != nil {
		cl.confirm = func(pos uint64) { l.Confirm(decoder.LSN(pos)) }
		cl.confirmed = func() uint64 { return l.Status().ConfirmedPosition }
	}
	return l
}
