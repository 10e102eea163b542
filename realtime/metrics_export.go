package realtime

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Transport labels of realtime_conn_open_connections.
const (
	transportWebSocket = "websocket"
	transportSSE       = "sse"
)

// serverCollector exports the transport counters of one Server.
type serverCollector struct {
	s *Server

	open      *prometheus.Desc
	accepted  *prometheus.Desc
	slow      *prometheus.Desc
	refused   *prometheus.Desc
	frames    *prometheus.Desc
	joins     *prometheus.Desc
	joined    *prometheus.Desc
	messageIn *prometheus.Desc
	limitHits *prometheus.Desc
}

// MetricsCollector returns a Prometheus collector for the server's
// transport metrics (connections, joins, inbound messages, slow consumers).
// Register it once per registry. Collecting takes the server's connection
// lock briefly to count connections by transport; the counters themselves
// are read without locks. It is safe for concurrent use.
func (s *Server) MetricsCollector() prometheus.Collector {
	return &serverCollector{
		s: s,
		open: prometheus.NewDesc("realtime_conn_open_connections",
			"Client connections open now, by transport.", []string{"transport"}, nil),
		accepted: prometheus.NewDesc("realtime_conn_accepted_total",
			"Client connections accepted, by transport (WebSocket only; SSE streams are counted as subscriptions).", []string{"transport"}, nil),
		slow: prometheus.NewDesc("realtime_conn_slow_consumers_total",
			"Connections closed because their outgoing queue passed its byte budget or a write missed its deadline.", nil, nil),
		refused: prometheus.NewDesc("realtime_conn_refused_total",
			"Connections (WebSocket and SSE) refused because --max-connections or --max-connections-per-ip was reached.", nil, nil),
		frames: prometheus.NewDesc("realtime_conn_frames_received_total",
			"WebSocket messages received from clients, by opcode.", []string{"opcode"}, nil),
		joins: prometheus.NewDesc("realtime_channel_joins_total",
			"Channel joins, by result (ok or refused).", []string{"result"}, nil),
		joined: prometheus.NewDesc("realtime_channel_joined_channels",
			"Channels joined over WebSocket right now (one per connection and topic).", nil, nil),
		messageIn: prometheus.NewDesc("realtime_channel_messages_in_total",
			"Messages published into channels by clients (WebSocket and REST), by kind.", []string{"kind"}, nil),
		limitHits: prometheus.NewDesc("realtime_limit_hits_total",
			"Client broadcasts and presence events refused by the events/s or presence events/s limit, and joins and connections refused by the project joins/s limit.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.open, c.accepted, c.slow, c.refused, c.frames, c.joins, c.joined, c.messageIn, c.limitHits} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	s, m := c.s, &c.s.metrics
	ws, sse := s.sessionCounts()
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(c.open, gauge, float64(ws), transportWebSocket)
	ch <- prometheus.MustNewConstMetric(c.open, gauge, float64(sse), transportSSE)
	ch <- prometheus.MustNewConstMetric(c.accepted, counter, float64(m.connsTotal.Load()), transportWebSocket)
	ch <- prometheus.MustNewConstMetric(c.slow, counter, float64(m.slowConsumers.Load()))
	ch <- prometheus.MustNewConstMetric(c.refused, counter, float64(m.connsRefused.Load()))
	ch <- prometheus.MustNewConstMetric(c.frames, counter, float64(m.msgsInText.Load()), "text")
	ch <- prometheus.MustNewConstMetric(c.frames, counter, float64(m.msgsInBinary.Load()), "binary")
	ch <- prometheus.MustNewConstMetric(c.joins, counter, float64(m.joins.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(c.joins, counter, float64(m.joinsRefused.Load()), "refused")
	ch <- prometheus.MustNewConstMetric(c.joined, gauge, float64(max(m.channels.Load(), 0)))
	ch <- prometheus.MustNewConstMetric(c.messageIn, counter, float64(m.broadcasts.Load()), "broadcast")
	ch <- prometheus.MustNewConstMetric(c.messageIn, counter, float64(m.presenceMsgs.Load()), "presence")
	ch <- prometheus.MustNewConstMetric(c.limitHits, counter, float64(m.limitHits.Load()))
}
