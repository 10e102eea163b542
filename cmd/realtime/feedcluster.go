package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openrealtime/realtime/cluster"
	"github.com/openrealtime/realtime/decoder"
)

// Slot holding in a cluster (docs/cluster.md "Change hand-off"): every node
// tries to read the shared slot; PostgreSQL lets one at a time.
const (
	// holderWalSenderTimeout is the replication connection's
	// wal_sender_timeout: a frozen holder loses the slot after it.
	holderWalSenderTimeout = "2s"
	// holderStandby is the holder's status update period (well under the
	// timeout, and the pace at which the slot is confirmed).
	holderStandby = 500 * time.Millisecond
	// standbyRetry is how often a node that does not hold the slot tries
	// to take it.
	standbyRetry = 500 * time.Millisecond
)

// clusterFeed is the cluster side of a pgFeed: the hand-off stream, and
// the state the holder's sink and the consumer keep.
type clusterFeed struct {
	handoff *cluster.Handoff
	up      atomic.Bool // the consumer is caught up and NATS is connected

	// announced are the relations the source announced since they were
	// last published. Owned by the source's Run goroutine (OnRelation and
	// the sink both run there).
	announced map[*decoder.Relation]bool
	// pipe publishes while this node holds the slot, nil otherwise. Owned
	// by the source's Run goroutine (OnState, the sink and the Confirmer
	// run there).
	pipe *cluster.Pipeline
	// confirm confirms a position to the source, and confirmed reads the
	// source's confirmed position (at a session's start, where it
	// streams from); both set once the source is made, before it runs.
	confirm   func(pos uint64)
	confirmed func() uint64
}

// logicalClusterConfig adapts the logical source of a cluster node: it
// reads the shared slot only when its stream is ready, gives the slot up
// within seconds when frozen, confirms every second, and retries a slot
// held elsewhere twice a second.
func (c *clusterFeed) logicalConfig(cfg *decoder.LogicalConfig) {
	cfg.Gate = c.handoff.Ready
	// The node's name in pg_stat_replication tells operators (and tests)
	// which node holds the slot.
	cfg.ReplicationParams = map[string]string{
		"wal_sender_timeout": holderWalSenderTimeout,
		"application_name":   "realtime_" + c.handoff.NodeName(),
	}
	cfg.StandbyInterval = holderStandby
	cfg.RetryMin, cfg.RetryMax = standbyRetry, time.Second
	// A session publishes through its own pipeline, which confirms each
	// position once the stream acknowledged what precedes it.
	cfg.OnState = func(up bool) {
		if c.pipe != nil {
			c.pipe.Close()
			c.pipe = nil
		}
		if up {
			c.pipe = c.handoff.NewPipeline(c.confirmed(), c.confirm)
		}
	}
	// A pipeline whose stream stopped acknowledging ends the session at
	// the next confirmation, so the slot goes to a node that can publish.
	cfg.Confirmer = func(pos decoder.LSN) error {
		if c.pipe == nil {
			return nil
		}
		return c.pipe.Confirm(uint64(pos))
	}
	cfg.OnRelation = func(r *decoder.Relation) { c.announced[r] = true }
}

// publish is the holder's sink: it hands the batch to the session's
// pipeline, which publishes it without waiting for the stream. A batch
// with an unchanged TOASTed value waits for its commits to be visible
// first, as the nodes' row checks may read the live row.
func (c *clusterFeed) publish(ctx context.Context, batch []decoder.Change) error {
	if needsLiveRow(batch) {
		if err := decoder.AwaitVisible(ctx); err != nil {
			return err
		}
	}
	if c.pipe == nil {
		return errors.New("cluster: publish outside a replication session")
	}
	if err := c.pipe.Publish(ctx, batch, func(r *decoder.Relation) bool { return c.announced[r] }); err != nil {
		return err
	}
	for i := range batch {
		delete(c.announced, batch[i].Rel)
	}
	return nil
}

// needsLiveRow reports whether a change of batch has an absent value in its
// new image (an unchanged TOASTed column).
func needsLiveRow(batch []decoder.Change) bool {
	for i := range batch {
		for j := range batch[i].New {
			if batch[i].New[j].Absent {
				return true
			}
		}
	}
	return false
}

// consume runs on every node: it waits for the stream and the slot, then
// passes the stream's changes to sink until ctx ends. The replay window
// starts at the slot's confirmed position; onState reports the feed up
// once caught up, and down while NATS is gone.
func (c *clusterFeed) consume(ctx context.Context, pool *pgxpool.Pool, slot string, log *slog.Logger,
	sink decoder.Sink, onRelation func(*decoder.Relation), setBase func(uint64), onState func(bool)) {
	c.handoff.EnsureLoop(ctx, databaseID(ctx, pool, log))
	base, err := slotConfirmed(ctx, pool, slot, log)
	if err != nil {
		return // ctx ended
	}
	setBase(base)
	types := decoder.NewTypeCache()
	dec := &decoder.BatchDecoder{
		TypeOf:     func(oid uint32) (*decoder.TypeInfo, error) { return types.Get(ctx, pool, oid) },
		OnRelation: onRelation,
	}
	c.handoff.Consume(ctx, cluster.ConsumeConfig{After: base, Decoder: dec, Sink: sink, OnState: func(up bool) {
		c.up.Store(up)
		onState(up)
	}})
}

// databaseID is the database cluster's system identifier, retried until
// the database answers; "" when it may not be read (the stream then is not
// tied to one database).
func databaseID(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) string {
	for i := 0; ; i++ {
		var id string
		err := pool.QueryRow(ctx, "SELECT system_identifier::text FROM pg_catalog.pg_control_system()").Scan(&id)
		if err == nil {
			return id
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) || ctx.Err() != nil {
			log.Warn("cluster: database system identifier unreadable; the change stream is not tied to this database", "err", err)
			return ""
		}
		if i%20 == 0 {
			log.Warn("cluster: waiting for the database", "err", err)
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// slotConfirmed waits until the slot exists (the first holder creates it)
// and returns its confirmed position.
func slotConfirmed(ctx context.Context, pool *pgxpool.Pool, slot string, log *slog.Logger) (uint64, error) {
	for i := 0; ; i++ {
		var lsn *string
		err := pool.QueryRow(ctx, "SELECT confirmed_flush_lsn::text FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", slot).Scan(&lsn)
		if err == nil && lsn != nil {
			pos, perr := decoder.ParseLSN(*lsn)
			if perr == nil {
				return uint64(pos), nil
			}
			err = perr
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) && i%20 == 0 {
			log.Warn("cluster: read the slot's position", "slot", slot, "err", err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("wait for slot %s: %w", slot, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// status is the change feed's state for the inspector on a node that does
// not hold the slot: the stream's position stands for the source's.
func (c *clusterFeed) status(st decoder.Status) decoder.Status {
	if st.Connected {
		return st
	}
	pos := c.handoff.LastPosition()
	st.Connected = c.up.Load()
	st.ReceivedPosition, st.ConfirmedPosition = pos, pos
	return st
}
