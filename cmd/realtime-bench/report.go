package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is everything one run measured. It is printed as a table and
// marshalled as JSON unchanged.
type Result struct {
	Label           string        `json:"label,omitempty"`
	Load            string        `json:"load"`
	Layout          string        `json:"layout"`
	Target          string        `json:"target"` // the node URLs, comma-separated
	Nodes           int           `json:"nodes"`  // how many nodes the clients were spread over
	Started         time.Time     `json:"started"`
	WallSeconds     float64       `json:"wall_seconds"`
	PostgresVersion string        `json:"postgres_version,omitempty"`
	Connect         phaseStats    `json:"connect"`
	Join            phaseStats    `json:"join"`
	Messages        *messageStats `json:"messages,omitempty"`
	Service         *ServiceStats `json:"service,omitempty"`
	Machine         struct {
		BusyCores float64 `json:"busy_cores"` // machine-wide, whole run
	} `json:"machine"`
	Tool struct {
		GoVersion    string  `json:"go_version"`
		CPUSeconds   float64 `json:"cpu_seconds"`
		PeakRSSBytes int64   `json:"rss_bytes"`
	} `json:"tool"`
	Disconnects int64 `json:"unexpected_disconnects"`
	Unparsed    int64 `json:"unparsed_messages"`
	Strays      int64 `json:"stray_messages"` // deliveries on sender sockets or unknown topics
}

// messageStats is the load part of a result.
type messageStats struct {
	Planned         int64           `json:"planned"`
	Sent            int64           `json:"sent"`
	SendFailed      int64           `json:"send_failed"`
	Unsent          int64           `json:"unsent"` // the senders could not keep up within the run bound
	SendSeconds     float64         `json:"send_seconds"`
	SentPerSec      float64         `json:"sent_per_second"`
	FanOut          float64         `json:"fan_out"` // expected deliveries per sent message
	DeliverySeconds float64         `json:"delivery_seconds"`
	DeliveredPerSec float64         `json:"delivered_per_second"`
	Accounting      Accounting      `json:"accounting"`
	SendToReceipt   LatencySummary  `json:"send_to_receipt"`
	CommitToReceipt *LatencySummary `json:"commit_to_receipt,omitempty"`
	ServiceCPUCores float64         `json:"service_cpu_cores"` // service CPU seconds per second during the load
	ToolCores       float64         `json:"tool_cpu_cores"`    // this tool, same window
	MachineCores    float64         `json:"machine_busy_cores"`
	OtherCores      float64         `json:"other_cpu_cores"` // machine − service − tool: PostgreSQL and anything else
	// PerServiceCPUSec is deliveries per CPU-second the service spent in the
	// load window: a figure that survives a busy, shared machine.
	PerServiceCPUSec float64  `json:"deliveries_per_service_cpu_second"`
	SendErrors       []string `json:"send_errors,omitempty"`
	Timeline         []int64  `json:"deliveries_per_second_timeline"`
}

// ServiceStats are the /proc figures of the service.
type ServiceStats struct {
	PID              int     `json:"pid"`
	RSSBaselineBytes int64   `json:"rss_baseline_bytes"`
	RSSConnected     int64   `json:"rss_connected_bytes"`
	RSSEnd           int64   `json:"rss_end_bytes"`
	BytesPerConn     float64 `json:"bytes_per_connection"`
	CPUSeconds       float64 `json:"cpu_seconds"` // baseline → end
	Threads          int     `json:"threads"`
}

type procPoint struct {
	ProcSample
	at time.Time
}

// procWatch samples the service at named points; pid 0 disables it.
type procWatch struct {
	pid    int
	points map[string]*procPoint
	err    error
}

func newProcWatch(pid int) *procWatch { return &procWatch{pid: pid, points: map[string]*procPoint{}} }

func (w *procWatch) sample(name string) {
	if w.pid <= 0 {
		return
	}
	s, err := readProc(w.pid)
	if err != nil {
		w.err = err
		return
	}
	w.points[name] = &procPoint{ProcSample: s, at: time.Now()}
}

func (w *procWatch) get(name string) *procPoint { return w.points[name] }

// summary derives memory per connection: (RSS connected − RSS baseline) /
// open connections.
func (w *procWatch) summary(conns int64) *ServiceStats {
	b, c, e := w.get("baseline"), w.get("connected"), w.get("end")
	if b == nil || c == nil || e == nil {
		return nil
	}
	s := &ServiceStats{PID: w.pid, RSSBaselineBytes: b.RSSBytes, RSSConnected: c.RSSBytes, RSSEnd: e.RSSBytes, CPUSeconds: e.CPUSeconds - b.CPUSeconds, Threads: e.Threads}
	if conns > 0 {
		s.BytesPerConn = float64(c.RSSBytes-b.RSSBytes) / float64(conns)
	}
	return s
}

// printTable writes the human-readable report.
func printTable(w io.Writer, r *Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k string, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	title := r.Load
	if r.Label != "" {
		title = r.Label + " (" + r.Load + ")"
	}
	fmt.Fprintf(tw, "== %s ==\n", title)
	row("layout", "%s", r.Layout)
	if r.Nodes > 1 {
		row("target", "%s (%d nodes; client k on node k %% %d)", r.Target, r.Nodes, r.Nodes)
	} else {
		row("target", "%s", r.Target)
	}
	row("connect", "%d ok, %d failed, %.0f/s, latency p50 %.1f ms p99 %.1f ms", r.Connect.OK, r.Connect.Failed, r.Connect.PerSec, r.Connect.Latency.P50MS, r.Connect.Latency.P99MS)
	row("join", "%d ok, %d failed, %.0f/s, reply p50 %.1f ms p99 %.1f ms", r.Join.OK, r.Join.Failed, r.Join.PerSec, r.Join.Latency.P50MS, r.Join.Latency.P99MS)
	if r.Join.Ready != nil {
		row("subscribed", "postgres_changes ready p50 %.1f ms p99 %.1f ms", r.Join.Ready.P50MS, r.Join.Ready.P99MS)
	}
	for _, e := range append(r.Connect.Errors, r.Join.Errors...) {
		row("  error", "%s", e)
	}
	if m := r.Messages; m != nil {
		row("sent", "%d of %d planned (%.0f/s), %d failed, %d unsent", m.Sent, m.Planned, m.SentPerSec, m.SendFailed, m.Unsent)
		row("delivered", "%d of %d expected, %.0f msgs/s (fan-out %.1f)", m.Accounting.Delivered, m.Accounting.Expected, m.DeliveredPerSec, m.FanOut)
		row("lost / dup", "%d lost (%d subscribers), %d duplicated, %d unexpected, %d unconfirmed", m.Accounting.Lost, m.Accounting.LossySubs, m.Accounting.Duplicates, m.Accounting.Unexpected, m.Accounting.Unconfirmed)
		if len(m.Accounting.LostSample) > 0 {
			var b strings.Builder
			for i, x := range m.Accounting.LostSample {
				if i == 8 {
					b.WriteString(" …")
					break
				}
				fmt.Fprintf(&b, " s%d/m%d", x.Subscriber, x.Message)
			}
			row("  lost e.g.", "%s", b.String())
		}
		l := m.SendToReceipt
		row("send→receipt", "p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  max %.2f ms", l.P50MS, l.P95MS, l.P99MS, l.MaxMS)
		if c := m.CommitToReceipt; c != nil {
			row("commit→receipt", "p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  max %.2f ms (commit_timestamp has ms precision)", c.P50MS, c.P95MS, c.P99MS, c.MaxMS)
		}
		if m.PerServiceCPUSec > 0 {
			row("efficiency", "%.0f deliveries per service CPU-second", m.PerServiceCPUSec)
		}
		row("CPU (cores)", "service %.2f, tool %.2f, other %.2f (PostgreSQL, other processes); machine %.2f of %d", m.ServiceCPUCores, m.ToolCores, m.OtherCores, m.MachineCores, runtime.NumCPU())
		for _, e := range m.SendErrors {
			row("  send error", "%s", e)
		}
	}
	if s := r.Service; s != nil {
		row("service RSS", "baseline %.1f MB, connected %.1f MB, end %.1f MB", mb(s.RSSBaselineBytes), mb(s.RSSConnected), mb(s.RSSEnd))
		row("memory/conn", "%.1f KB", s.BytesPerConn/1024)
		row("service CPU s", "%.2f (whole run), %d threads", s.CPUSeconds, s.Threads)
	}
	row("machine", "%.2f cores busy on average; tool used %.2f CPU s", r.Machine.BusyCores, r.Tool.CPUSeconds)
	var notes []string
	if r.Disconnects > 0 {
		notes = append(notes, fmt.Sprintf("%d unexpected disconnects/closes", r.Disconnects))
	}
	if r.Unparsed > 0 {
		notes = append(notes, fmt.Sprintf("%d unparsed messages", r.Unparsed))
	}
	if r.Strays > 0 {
		notes = append(notes, fmt.Sprintf("%d stray messages", r.Strays))
	}
	if len(notes) > 0 {
		row("warnings", "%s", strings.Join(notes, "; "))
	}
	tw.Flush()
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// writeJSON writes r indented.
func writeJSON(w io.Writer, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
