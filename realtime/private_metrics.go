package realtime

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openrealtime/realtime/auth/policy"
)

// privateCounters counts private channel probes. Process-wide, like the
// hub's drop totals: one atomic add per probe.
type privateCounters struct {
	reads, readErrors   atomic.Int64
	writes, writeErrors atomic.Int64
}

// privateStats is the process's private channel probe counters.
var privateStats privateCounters

// probe counts one probe of kind "read" or "write".
func (p *privateCounters) probe(kind string, err error) {
	if kind == "read" {
		p.reads.Add(1)
		if err != nil {
			p.readErrors.Add(1)
		}
		return
	}
	p.writes.Add(1)
	if err != nil {
		p.writeErrors.Add(1)
	}
}

// PrivateMetricsCollector exports the private channel probe counters:
// realtime_private_probes_total{kind},
// realtime_private_probe_errors_total{kind} and
// realtime_private_read_probe_paths_total{path}.
func PrivateMetricsCollector() prometheus.Collector { return privateCollector{} }

var (
	privateProbesDesc = prometheus.NewDesc("realtime_private_probes_total",
		"Private channel policy probes run (read at join and token change, write on first broadcast or track).", []string{"kind"}, nil)
	privateProbeErrorsDesc = prometheus.NewDesc("realtime_private_probe_errors_total",
		"Private channel policy probes that failed with a database error.", []string{"kind"}, nil)
	privateReadPathsDesc = prometheus.NewDesc("realtime_private_read_probe_paths_total",
		"Read probes by how the policies were judged: on an image of the probe rows, or by inserting them (docs/protocol.md §9.2).", []string{"path"}, nil)
)

type privateCollector struct{}

func (privateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- privateProbesDesc
	ch <- privateProbeErrorsDesc
	ch <- privateReadPathsDesc
}

func (privateCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(privateProbesDesc, prometheus.CounterValue, float64(privateStats.reads.Load()), "read")
	ch <- prometheus.MustNewConstMetric(privateProbesDesc, prometheus.CounterValue, float64(privateStats.writes.Load()), "write")
	ch <- prometheus.MustNewConstMetric(privateProbeErrorsDesc, prometheus.CounterValue, float64(privateStats.readErrors.Load()), "read")
	ch <- prometheus.MustNewConstMetric(privateProbeErrorsDesc, prometheus.CounterValue, float64(privateStats.writeErrors.Load()), "write")
	image, insert := policy.ReadProbePaths()
	ch <- prometheus.MustNewConstMetric(privateReadPathsDesc, prometheus.CounterValue, float64(image), "image")
	ch <- prometheus.MustNewConstMetric(privateReadPathsDesc, prometheus.CounterValue, float64(insert), "insert")
}
