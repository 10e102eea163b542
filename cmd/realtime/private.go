package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/decoder"
	"github.com/openrealtime/realtime/internal/realtimeschema"
)

// schemaRetryMax bounds the pause between attempts to create the realtime
// schema while the database cannot be reached.
const schemaRetryMax = 10 * time.Second

// realtimeSchema is the outcome of setupRealtimeSchema: done is closed once
// the objects exist, or once the database refused them.
type realtimeSchema struct {
	done chan struct{}
}

// setupRealtimeSchema creates or upgrades the realtime schema objects
// (docs/protocol.md §9.1) and keeps the day partitions of realtime.messages
// current until ctx ends. It returns nil when the database refused them (an
// SQL error): private channels then admit service_role only and database
// broadcasts are off. When the database cannot be reached yet (a
// PostgreSQL still starting, a browser PGlite whose page has not connected
// its bridge) it keeps trying in the background; the caller wires private
// channels and database broadcasts as usual and starts the change source
// once done is closed (docs/operations.md "Realtime schema").
func setupRealtimeSchema(ctx context.Context, o *options, pool *pgxpool.Pool, log *slog.Logger) *realtimeSchema {
	st := &realtimeSchema{done: make(chan struct{})}
	err := st.attempt(ctx, o, pool, log)
	if err == nil {
		return st
	}
	if schemaRefused(err) || ctx.Err() != nil {
		log.Error("realtime schema unavailable: private channels admit service_role only, database broadcasts are off", "err", err)
		return nil
	}
	log.Warn("realtime schema pending: the database cannot be reached yet; retrying", "err", err)
	go func() {
		wait := time.Second
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			err := st.attempt(ctx, o, pool, log)
			if err == nil || ctx.Err() != nil {
				return
			}
			if schemaRefused(err) {
				log.Error("realtime schema unavailable: private channels cannot be authorized, database broadcasts are off", "err", err)
				close(st.done)
				return
			}
			log.Debug("realtime schema still pending", "err", err)
			wait = min(2*wait, schemaRetryMax)
		}
	}()
	return st
}

// schemaRefused reports whether err is the database refusing the schema's
// SQL, as opposed to not being reachable yet: a server error not raised
// while connecting, outside the classes of connection exceptions (08),
// insufficient resources (53) and operator intervention (57: a server
// starting up or shutting down).
func schemaRefused(err error) bool {
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return false
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code[:2] {
	case "08", "53", "57":
		return false
	}
	return true
}

// attempt runs the migrations once; on success it marks st ready and
// starts the partition maintenance.
func (st *realtimeSchema) attempt(ctx context.Context, o *options, pool *pgxpool.Pool, log *slog.Logger) error {
	opts := realtimeschema.Options{Publication: true, Retention: o.MessagesRetention}
	mctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	applied, err := realtimeschema.Migrate(mctx, pool, opts)
	cancel()
	if err != nil {
		return err
	}
	log.Info("realtime schema ready", "applied_migrations", applied, "messages_retention", opts.Retention)
	close(st.done)
	go func() {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := realtimeschema.Maintain(ctx, pool, opts); err != nil && ctx.Err() == nil {
				log.Warn("realtime.messages partition maintenance failed", "err", err)
			}
		}
	}()
	return nil
}

// splitMessages returns the changes of batch that are not realtime.messages
// rows, after handing those to dbb in order; batch itself is not modified.
func splitMessages(batch []decoder.Change, dbb *channels.DBBroadcasts) []decoder.Change {
	n := 0
	for i := range batch {
		if channels.IsMessagesRelation(batch[i].Rel) {
			n++
		}
	}
	if n == 0 {
		return batch
	}
	rest := make([]decoder.Change, 0, len(batch)-n)
	for i := range batch {
		if channels.IsMessagesRelation(batch[i].Rel) {
			if dbb != nil {
				dbb.Deliver(&batch[i])
			}
			continue
		}
		rest = append(rest, batch[i])
	}
	return rest
}

// dbBroadcastCollector exports the database broadcast counters.
type dbBroadcastCollector struct{ d *channels.DBBroadcasts }

var dbBroadcastDesc = prometheus.NewDesc("realtime_db_broadcasts_total",
	"realtime.messages rows received from the change source, by outcome.", []string{"outcome"}, nil)

func (c dbBroadcastCollector) Describe(ch chan<- *prometheus.Desc) { ch <- dbBroadcastDesc }

func (c dbBroadcastCollector) Collect(ch chan<- prometheus.Metric) {
	pub, inv, big := c.d.Stats()
	ch <- prometheus.MustNewConstMetric(dbBroadcastDesc, prometheus.CounterValue, float64(pub), "published")
	ch <- prometheus.MustNewConstMetric(dbBroadcastDesc, prometheus.CounterValue, float64(inv), "invalid")
	ch <- prometheus.MustNewConstMetric(dbBroadcastDesc, prometheus.CounterValue, float64(big), "too_large")
}
