package admin

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openrealtime/realtime/channels"
)

// pipelineStats are the figures fed by OnDelivery.
type pipelineStats struct {
	lastFanout atomic.Int64 // commit→fan-out latency of the newest batch, ns

	rlsQueries prometheus.Counter
	rlsWait    prometheus.Histogram
	fanout     prometheus.Histogram
}

func (s *pipelineStats) init() {
	s.rlsQueries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "realtime_pg_rls_queries_total",
		Help: "RLS visibility queries run (one per table and distinct claims set per batch).",
	})
	s.rlsWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "realtime_pg_rls_check_duration_seconds",
		Help:    "Wall time a change batch waited for its RLS checks (observed for batches that ran any).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15), // 0.5 ms .. 8 s
	})
	s.fanout = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "realtime_pg_commit_fanout_latency_seconds",
		Help:    "Time from a batch's first commit (database clock) until its frames were queued to subscribers.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1 ms .. 32 s
	})
}

// ObserveDelivery records one postgres_changes batch; install it as
// channels.PGConfig.OnDelivery. It is safe for concurrent use and does not
// block.
func (i *Inspector) ObserveDelivery(st channels.DeliveryStats) {
	s := &i.stats
	if st.RLSQueries > 0 {
		s.rlsQueries.Add(float64(st.RLSQueries))
		s.rlsWait.Observe(st.RLSDuration.Seconds())
	}
	if !st.Oldest.IsZero() {
		// The commit time comes from the database's clock; a skewed clock
		// must not produce negative latencies.
		lat := max(time.Since(st.Oldest), 0)
		s.fanout.Observe(lat.Seconds())
		s.lastFanout.Store(int64(max(lat, time.Nanosecond)))
	}
}

// sweepDrops returns the drop totals by reason (exact process-wide
// counters kept by channels).
func (i *Inspector) sweepDrops(_ []channels.TopicStats) []int64 {
	return channels.DropTotals()
}

// inspectorCollector exports the pipeline metrics.
type inspectorCollector struct {
	i *Inspector

	topics, subs, out, dropped                     *prometheus.Desc
	repConnected, repLagBytes, repLagSeconds       *prometheus.Desc
	repLastCommit, repSessions, repChangesReceived *prometheus.Desc
	rls                                            rlsDescs
}

// Collector returns the Prometheus collector of the channel and pipeline
// metrics: channels and subscriptions open, messages out by kind, drops by
// reason, RLS and commit→fan-out latency histograms, and the change
// source's replication state (omitted while no source is set). Register it
// once per registry. Collecting takes hub snapshots; it never blocks
// fan-out. It is safe for concurrent use.
func (i *Inspector) Collector() prometheus.Collector {
	return &inspectorCollector{
		i: i,
		topics: prometheus.NewDesc("realtime_channel_open_channels",
			"Channels (topics) with at least one subscriber on this node.", nil, nil),
		subs: prometheus.NewDesc("realtime_channel_subscriptions",
			"Subscriptions on this node (joined channels and SSE streams).", nil, nil),
		out: prometheus.NewDesc("realtime_channel_messages_out_total",
			"Messages queued to subscribers, by kind.", []string{"kind"}, nil),
		dropped: prometheus.NewDesc("realtime_channel_messages_dropped_total",
			"Messages not sent to a subscriber, by reason (counted from live subscriptions at each scrape).", []string{"reason"}, nil),
		repConnected: prometheus.NewDesc("realtime_replication_connected",
			"1 while the change source is streaming.", nil, nil),
		repLagBytes: prometheus.NewDesc("realtime_replication_lag_bytes",
			"WAL (or change-log) distance between the newest position the server reported and the confirmed one.", nil, nil),
		repLagSeconds: prometheus.NewDesc("realtime_replication_lag_seconds",
			"0 when nothing is pending; otherwise the commit→fan-out latency of the newest batch.", nil, nil),
		repLastCommit: prometheus.NewDesc("realtime_replication_last_commit_timestamp_seconds",
			"Commit time of the newest delivered transaction (Unix seconds).", nil, nil),
		repSessions: prometheus.NewDesc("realtime_replication_sessions_total",
			"Streaming sessions the change source started (1 + reconnects).", nil, nil),
		repChangesReceived: prometheus.NewDesc("realtime_replication_changes_total",
			"Row changes the change source delivered to the fan-out (a redelivered batch counts again).", nil, nil),
		rls: newRLSDescs(),
	}
}

// Describe implements prometheus.Collector.
func (c *inspectorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.topics, c.subs, c.out, c.dropped, c.repConnected, c.repLagBytes, c.repLagSeconds, c.repLastCommit, c.repSessions, c.repChangesReceived} {
		ch <- d
	}
	s := &c.i.stats
	s.rlsQueries.Describe(ch)
	s.rlsWait.Describe(ch)
	s.fanout.Describe(ch)
	c.rls.describe(ch)
}

// Collect implements prometheus.Collector.
func (c *inspectorCollector) Collect(ch chan<- prometheus.Metric) {
	i := c.i
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	topics := i.hub.Topics()
	nsubs := 0
	for _, t := range topics {
		nsubs += t.Subscribers
	}
	ch <- prometheus.MustNewConstMetric(c.topics, gauge, float64(len(topics)))
	ch <- prometheus.MustNewConstMetric(c.subs, gauge, float64(nsubs))
	// The label set stays closed: "other" has no source today and is 0.
	out := i.hub.MessagesOut()
	for _, m := range []struct {
		kind string
		n    int64
	}{{"broadcast", out.Broadcast}, {"presence", out.Presence}, {"postgres_changes", out.PostgresChanges}, {"other", 0}} {
		ch <- prometheus.MustNewConstMetric(c.out, counter, float64(m.n), m.kind)
	}
	totals := i.sweepDrops(topics)
	for r, reason := range channels.DropReasons() {
		ch <- prometheus.MustNewConstMetric(c.dropped, counter, float64(totals[r]), reason.String())
	}
	s := &i.stats
	s.rlsQueries.Collect(ch)
	s.rlsWait.Collect(ch)
	s.fanout.Collect(ch)
	c.rls.collect(i, ch)

	rep, ok := i.replication(time.Now())
	if !ok {
		return
	}
	connected := 0.0
	if rep.Connected {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(c.repConnected, gauge, connected)
	ch <- prometheus.MustNewConstMetric(c.repLagBytes, gauge, float64(rep.LagBytes))
	ch <- prometheus.MustNewConstMetric(c.repLagSeconds, gauge, rep.LagSeconds)
	if rep.LastCommitTime != nil {
		ch <- prometheus.MustNewConstMetric(c.repLastCommit, gauge, float64(rep.LastCommitTime.UnixNano())/1e9)
	}
	ch <- prometheus.MustNewConstMetric(c.repSessions, counter, float64(rep.Sessions))
	ch <- prometheus.MustNewConstMetric(c.repChangesReceived, counter, float64(rep.Changes))
}
