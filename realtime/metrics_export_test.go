package realtime

import (
	"testing"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/openrealtime/realtime/realtime/phoenix"
)

// gather returns "name{label=value}" → value for every sample of reg.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestMetricsCollector(t *testing.T) {
	ts := startServer(t, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(ts.srv.MetricsCollector())

	got := gather(t, reg)
	for _, k := range []string{
		"realtime_conn_open_connections{transport=websocket}", "realtime_conn_open_connections{transport=sse}",
		"realtime_channel_joins_total{result=ok}", "realtime_channel_messages_in_total{kind=broadcast}",
		"realtime_conn_slow_consumers_total",
	} {
		if v, ok := got[k]; !ok || v != 0 {
			t.Fatalf("%s = %v (present %v) on a fresh server", k, v, ok)
		}
	}

	key := token(t, map[string]any{"role": "anon"})
	a := ts.dial(t, "2.0.0", key)
	b := ts.dial(t, "2.0.0", key)
	a.join("realtime:room", "1", map[string]any{"broadcast": map[string]any{"ack": true}})
	b.join("realtime:room", "1", map[string]any{})
	// a private join as anon is refused
	if r := a.join("realtime:room", "9", map[string]any{"private": true}); status(r) != "error" {
		t.Fatalf("private join as anon: %s", r.Payload)
	}
	a.send("1", "2", "realtime:room", "broadcast", map[string]any{"type": "broadcast", "event": "e", "payload": map[string]any{}})
	a.expect("phx_reply")
	b.expect("broadcast")
	push, _ := phoenix.AppendBroadcastPush(nil, "1", "3", "realtime:room", "bin", nil, phoenix.EncodingBinary, []byte{1})
	a.ws.WriteMessage(websocket.BinaryMessage, push)
	a.expect("phx_reply")

	got = gather(t, reg)
	want := map[string]float64{
		"realtime_conn_open_connections{transport=websocket}": 2,
		"realtime_conn_accepted_total{transport=websocket}":   2,
		"realtime_channel_joins_total{result=ok}":             2,
		"realtime_channel_joins_total{result=refused}":        1,
		"realtime_channel_joined_channels":                    2,
		"realtime_channel_messages_in_total{kind=broadcast}":  2,
		"realtime_conn_frames_received_total{opcode=binary}":  1,
		"realtime_conn_frames_received_total{opcode=text}":    4,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
