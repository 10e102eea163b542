package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/decoder"
	"github.com/openrealtime/realtime/internal/realtimeschema"
)

// setupRealtimeSchema creates or upgrades the realtime schema objects
// (docs/protocol.md §9.1) and keeps the day partitions of realtime.messages
// current until ctx ends. It reports whether the objects are usable; when
// not, private channels fall back to service_role only and database
// broadcasts are off.
func setupRealtimeSchema(ctx context.Context, o *options, pool *pgxpool.Pool, log *slog.Logger) bool {
	opts := realtimeschema.Options{Publication: true, Retention: o.MessagesRetention}
	mctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	applied, err := realtimeschema.Migrate(mctx, pool, opts)
	cancel()
	if err != nil {
		log.Error("realtime schema unavailable: private channels admit service_role only, database broadcasts are off", "err", err)
		return false
	}
	log.Info("realtime schema ready", "applied_migrations", applied, "messages_retention", opts.Retention)
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
	return true
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
