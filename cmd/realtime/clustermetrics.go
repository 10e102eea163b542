package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openrealtime/realtime/cluster"
)

// clusterCollectors are the node's cluster series, labelled with the node
// name (docs/cluster.md "Metrics").
func clusterCollectors(n *cluster.Node) []prometheus.Collector {
	labels := prometheus.Labels{"node": n.Name()}
	cs := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "realtime_cluster_messages_published_total", Help: "Broadcasts published to the other nodes.", ConstLabels: labels,
		}, func() float64 { return float64(n.Stats().Published) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "realtime_cluster_messages_received_total", Help: "Broadcasts received from other nodes and fanned out here.", ConstLabels: labels,
		}, func() float64 { return float64(n.Stats().Received) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "realtime_cluster_connected", Help: "1 while the NATS connection is up.", ConstLabels: labels,
		}, func() float64 {
			if n.Stats().Connected {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "realtime_cluster_isolated", Help: "1 while the node is cut off from the other nodes (its clients were told).", ConstLabels: labels,
		}, func() float64 {
			if n.Stats().Isolated {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "realtime_cluster_routes", Help: "Routes of the embedded NATS server to other nodes.", ConstLabels: labels,
		}, func() float64 { return float64(n.Stats().Routes) }),
	}
	for class := range n.Stats().Dropped {
		l := prometheus.Labels{"node": n.Name(), "class": class}
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "realtime_cluster_messages_dropped_total", Help: "Messages lost between nodes, by cause.", ConstLabels: l,
		}, func() float64 { return float64(n.Stats().Dropped[class]) }))
	}
	return cs
}
