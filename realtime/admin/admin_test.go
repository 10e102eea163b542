package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/decoder"
)

var testSecret = []byte("admin-test-secret-admin-test-secret")

const testToken = "operator-token-1234"

func jwtFor(t *testing.T, role string, exp time.Time) string {
	t.Helper()
	tok, err := auth.SignHS256(testSecret, map[string]any{"role": role, "sub": "u-1", "exp": exp.Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// fakeEncoder frames everything as a short text tag.
type fakeEncoder struct{}

func (fakeEncoder) EncodeBroadcast(topic string, b *channels.Broadcast) (channels.Frame, bool) {
	return channels.Frame{Data: []byte("broadcast " + topic + " " + b.Event + " " + string(b.Payload))}, true
}
func (fakeEncoder) EncodePresenceDiff(topic string, diff []byte) channels.Frame {
	return channels.Frame{Data: []byte("presence " + topic)}
}
func (fakeEncoder) EncodePostgresChange(topic string, ids []int64, data []byte, c channels.Cursor) channels.Frame {
	return channels.Frame{Data: []byte("change " + topic)}
}
func (fakeEncoder) EncodeSystem(topic string, payload []byte) channels.Frame {
	return channels.Frame{Data: []byte("system " + topic)}
}

// fakeWriter records frames and the close reason.
type fakeWriter struct {
	frames chan string
	mu     sync.Mutex
	closed []channels.CloseReason
}

func (w *fakeWriter) Enqueue(f channels.Frame) bool {
	select {
	case w.frames <- string(f.Data):
		return true
	default:
		return false
	}
}

func (w *fakeWriter) close(r channels.CloseReason) {
	w.mu.Lock()
	w.closed = append(w.closed, r)
	w.mu.Unlock()
}

func (w *fakeWriter) closeReasons() []channels.CloseReason {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]channels.CloseReason(nil), w.closed...)
}

type fixture struct {
	hub  *channels.Hub
	insp *Inspector
	srv  *httptest.Server
	reg  *prometheus.Registry
}

func newFixture(t *testing.T, token string) *fixture {
	t.Helper()
	v, err := auth.NewVerifier(auth.Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	hub := channels.NewHub(channels.HubConfig{})
	insp := New(Config{Hub: hub, Verifier: v, Token: token, TailHeartbeat: time.Hour, NodeName: "node-a"})
	srv := httptest.NewServer(insp.Handler())
	t.Cleanup(func() {
		insp.Close()
		srv.CloseClientConnections()
		srv.Close()
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(insp.Collector())
	return &fixture{hub: hub, insp: insp, srv: srv, reg: reg}
}

// subscribe joins a fake subscriber to realtime:<name>.
func (f *fixture) subscribe(t *testing.T, name, role string) (*channels.Subscription, *fakeWriter) {
	t.Helper()
	w := &fakeWriter{frames: make(chan string, 64)}
	id := f.hub.NextID()
	s := &channels.Subscription{
		ID: id, Topic: "realtime:" + name, Name: name, Writer: w, Encoder: fakeEncoder{},
		Conn: &channels.ConnInfo{ID: id, Transport: "websocket", Version: "2.0.0", RemoteAddr: "10.0.0.7", Since: time.Now(), QueuedBytes: func() int { return 42 }, Close: w.close},
	}
	s.SetIdentity(&channels.Identity{Role: role, Sub: "sub-" + role, Key: role})
	f.hub.Subscribe(s)
	t.Cleanup(func() { f.hub.Unsubscribe(s) })
	return s, w
}

func (f *fixture) do(t *testing.T, method, path, auth, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, data
}

func (f *fixture) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	code, body := f.do(t, "GET", path, "Bearer "+testToken, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

// metric returns the value of the named counter, gauge or histogram count
// with the given label value (or no labels), and whether it exists.
func (f *fixture) metric(t *testing.T, name, labelValue string) (float64, bool) {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelValue != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != labelValue) {
				continue
			}
			return metricValue(m), true
		}
	}
	return 0, false
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func TestAuth(t *testing.T) {
	f := newFixture(t, testToken)
	future := time.Now().Add(time.Hour)
	cases := []struct {
		name   string
		header string
		want   int
	}{
		{"no header", "", 401},
		{"empty bearer", "Bearer ", 401},
		{"bare token", testToken, 401},
		{"basic scheme", "Basic " + testToken, 401},
		{"wrong token", "Bearer nope", 401},
		{"token prefix", "Bearer " + testToken[:len(testToken)-1], 401},
		{"token with suffix", "Bearer " + testToken + "x", 401},
		{"anon jwt", "Bearer " + jwtFor(t, "anon", future), 401},
		{"authenticated jwt", "Bearer " + jwtFor(t, "authenticated", future), 401},
		{"expired service_role jwt", "Bearer " + jwtFor(t, "service_role", time.Now().Add(-time.Minute)), 401},
		{"admin token", "Bearer " + testToken, 200},
		{"admin token, lower-case scheme", "bearer " + testToken, 200},
		{"service_role jwt", "Bearer " + jwtFor(t, "service_role", future), 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := f.do(t, "GET", "/admin/api/channels", tc.header, "")
			if code != tc.want {
				t.Fatalf("status %d, want %d: %s", code, tc.want, body)
			}
			if tc.want == 401 {
				var e struct{ Error string }
				if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
					t.Fatalf("401 body is not a JSON error: %s", body)
				}
				if strings.Contains(string(body), testToken) {
					t.Fatal("error echoes the token")
				}
			}
		})
	}
	// Every API path is behind the check, including unknown ones.
	for _, p := range []string{"GET /admin/api/replication", "GET /admin/api/cluster", "GET /admin/api/events", "POST /admin/api/channels/x/broadcast", "DELETE /admin/api/subscribers/1", "GET /admin/api/nope"} {
		method, path, _ := strings.Cut(p, " ")
		if code, _ := f.do(t, method, path, "", ""); code != 401 {
			t.Errorf("%s without a token: %d", p, code)
		}
	}
}

func TestEmptyAdminTokenAcceptsOnlyServiceRole(t *testing.T) {
	f := newFixture(t, "")
	for _, h := range []string{"Bearer ", "Bearer  ", "Bearer x"} {
		if code, _ := f.do(t, "GET", "/admin/api/channels", h, ""); code != 401 {
			t.Errorf("%q: %d, want 401", h, code)
		}
	}
	if code, body := f.do(t, "GET", "/admin/api/channels", "Bearer "+jwtFor(t, "service_role", time.Now().Add(time.Hour)), ""); code != 200 {
		t.Fatalf("service_role: %d %s", code, body)
	}
}

func TestChannelsDetailAndDrops(t *testing.T) {
	f := newFixture(t, testToken)
	a, _ := f.subscribe(t, "room1", "authenticated")
	b, _ := f.subscribe(t, "room1", "anon")
	f.subscribe(t, "room2", "anon")

	var list ChannelList
	f.getJSON(t, "/admin/api/channels", &list)
	if list.Totals.Channels != 2 || list.Totals.Subscribers != 3 || len(list.Channels) != 2 {
		t.Fatalf("list = %+v", list)
	}
	if c := list.Channels[0]; c.Topic != "realtime:room1" || c.Name != "room1" || c.Subscribers != 2 || c.Private {
		t.Fatalf("room1 = %+v", c)
	}

	// Drop totals are process-wide: compare with what earlier tests left.
	baseRLS, _ := f.metric(t, "realtime_channel_messages_dropped_total", "rls_denied")
	baseFilter, _ := f.metric(t, "realtime_channel_messages_dropped_total", "filter_mismatch")
	b.Drop(channels.DropRLS)
	b.Drop(channels.DropRLS)
	a.Drop(channels.DropFilter)
	for _, path := range []string{"/admin/api/channels/room1", "/admin/api/channels/realtime:room1"} {
		var d ChannelDetail
		f.getJSON(t, path, &d)
		if len(d.Channels) != 1 || len(d.Subscribers) != 2 {
			t.Fatalf("%s: %d channels, %d subscribers", path, len(d.Channels), len(d.Subscribers))
		}
		sa, sb := d.Subscribers[0], d.Subscribers[1]
		if sa.ID != a.ID || sb.ID != b.ID {
			t.Fatalf("%s: subscribers not sorted by id: %d %d", path, sa.ID, sb.ID)
		}
		if sa.Role != "authenticated" || sa.Sub != "sub-authenticated" || sa.Transport != "websocket" || sa.Version != "2.0.0" || sa.RemoteAddr != "10.0.0.7" || sa.QueuedBytes != 42 {
			t.Fatalf("%s: subscriber = %+v", path, sa)
		}
		if sb.NotSent["rls_denied"] != 2 || sb.NotSent["filter_mismatch"] != 0 || sa.NotSent["filter_mismatch"] != 1 {
			t.Fatalf("%s: not sent a=%v b=%v", path, sa.NotSent, sb.NotSent)
		}
	}
	if code, body := f.do(t, "GET", "/admin/api/channels/nope", "Bearer "+testToken, ""); code != 404 || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("unknown channel: %d %s", code, body)
	}

	// Drops are counted by reason, and stay counted after the subscriber leaves.
	if v, _ := f.metric(t, "realtime_channel_messages_dropped_total", "rls_denied"); v-baseRLS != 2 {
		t.Fatalf("rls_denied = %v, want %v", v, baseRLS+2)
	}
	b.Drop(channels.DropRLS)
	if v, _ := f.metric(t, "realtime_channel_messages_dropped_total", "rls_denied"); v-baseRLS != 3 {
		t.Fatalf("rls_denied = %v, want %v", v, baseRLS+3)
	}
	f.hub.Unsubscribe(b)
	if v, _ := f.metric(t, "realtime_channel_messages_dropped_total", "rls_denied"); v-baseRLS != 3 {
		t.Fatalf("rls_denied after leave = %v, want %v", v, baseRLS+3)
	}
	if v, _ := f.metric(t, "realtime_channel_messages_dropped_total", "filter_mismatch"); v-baseFilter != 1 {
		t.Fatalf("filter_mismatch = %v, want 1", v)
	}
	if v, _ := f.metric(t, "realtime_channel_subscriptions", ""); v != 2 {
		t.Fatalf("subscriptions = %v, want 2", v)
	}
	if v, _ := f.metric(t, "realtime_channel_open_channels", ""); v != 2 {
		t.Fatalf("open channels = %v, want 2", v)
	}
}

// tailStream reads the SSE events of one live tail.
type tailStream struct {
	events chan [2]string // event name, data
	cancel context.CancelFunc
	done   chan struct{}
}

func (f *fixture) openTail(t *testing.T, query string) *tailStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/admin/api/events"+query, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		t.Fatalf("events: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	ts := &tailStream{events: make(chan [2]string, 64), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ts.done)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		var ev, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				data = line[len("data: "):]
			case line == "" && ev != "":
				ts.events <- [2]string{ev, data}
				ev, data = "", ""
			}
		}
		close(ts.events)
	}()
	t.Cleanup(func() { cancel(); <-ts.done })
	if ev := ts.next(t); ev[0] != "ready" {
		t.Fatalf("first event %q, want ready", ev[0])
	}
	return ts
}

func (ts *tailStream) next(t *testing.T) [2]string {
	t.Helper()
	select {
	case ev, ok := <-ts.events:
		if !ok {
			t.Fatal("tail ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no tail event within 10 s")
	}
	return [2]string{}
}

func TestBroadcastAndLiveTail(t *testing.T) {
	f := newFixture(t, testToken)
	_, w1 := f.subscribe(t, "room1", "anon")
	_, w2 := f.subscribe(t, "room2", "anon")
	tail1 := f.openTail(t, "?channel=room1")
	all := f.openTail(t, "")

	send := func(path, body string) {
		t.Helper()
		code, resp := f.do(t, "POST", path, "Bearer "+testToken, body)
		if code != http.StatusAccepted {
			t.Fatalf("POST %s: %d %s", path, code, resp)
		}
	}
	send("/admin/api/channels/room2/broadcast", `{"event":"first"}`)
	send("/admin/api/channels/room1/broadcast", `{"event":"second","payload":{ "n" : 1 }}`)
	if got := <-w2.frames; got != `broadcast realtime:room2 first {}` {
		t.Fatalf("room2 frame %q", got)
	}
	if got := <-w1.frames; got != `broadcast realtime:room1 second {"n":1}` {
		t.Fatalf("room1 frame %q", got)
	}

	// The filtered tail sees only room1 even though room2's message came first.
	ev := tail1.next(t)
	var tap channels.TapEvent
	if err := json.Unmarshal([]byte(ev[1]), &tap); err != nil || ev[0] != "fanout" {
		t.Fatalf("tail event %q %s (%v)", ev[0], ev[1], err)
	}
	if tap.Topic != "realtime:room1" || tap.Event != "second" || tap.Kind != "broadcast" || tap.Delivered != 1 || tap.Payload != `{"n":1}` {
		t.Fatalf("tap = %+v", tap)
	}
	var topics []string
	for range 2 {
		ev := all.next(t)
		json.Unmarshal([]byte(ev[1]), &tap)
		topics = append(topics, tap.Topic)
	}
	if strings.Join(topics, ",") != "realtime:room2,realtime:room1" {
		t.Fatalf("unfiltered tail saw %v", topics)
	}
	if v, _ := f.metric(t, "realtime_channel_messages_out_total", "broadcast"); v != 2 {
		t.Fatalf("messages out broadcast = %v, want 2", v)
	}

	for _, body := range []string{`{"payload":[1]}`, `{"payload":"x"}`, `not json`} {
		if code, resp := f.do(t, "POST", "/admin/api/channels/room1/broadcast", "Bearer "+testToken, body); code != 400 {
			t.Errorf("body %s: %d %s", body, code, resp)
		}
	}
}

func TestCloseEndsLiveTails(t *testing.T) {
	f := newFixture(t, testToken)
	tail := f.openTail(t, "")
	f.insp.Close()
	f.insp.Close() // idempotent
	select {
	case <-tail.done:
	case <-time.After(10 * time.Second):
		t.Fatal("live tail still open after Close")
	}
}

func TestDisconnect(t *testing.T) {
	f := newFixture(t, testToken)
	s, w := f.subscribe(t, "room1", "anon")
	_, other := f.subscribe(t, "room1", "anon")
	code, body := f.do(t, "DELETE", "/admin/api/subscribers/"+itoa(s.ID), "Bearer "+testToken, "")
	if code != 200 {
		t.Fatalf("disconnect: %d %s", code, body)
	}
	if r := w.closeReasons(); len(r) != 1 || r[0] != channels.ReasonAdmin {
		t.Fatalf("close reasons %v", r)
	}
	if r := other.closeReasons(); len(r) != 0 {
		t.Fatalf("other subscriber closed too: %v", r)
	}
	if code, _ := f.do(t, "DELETE", "/admin/api/subscribers/999999", "Bearer "+testToken, ""); code != 404 {
		t.Fatalf("unknown id: %d", code)
	}
	if code, _ := f.do(t, "DELETE", "/admin/api/subscribers/abc", "Bearer "+testToken, ""); code != 400 {
		t.Fatalf("bad id: %d", code)
	}
}

func itoa(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestReplicationAndLatencyMetrics(t *testing.T) {
	f := newFixture(t, testToken)
	var rep Replication
	f.getJSON(t, "/admin/api/replication", &rep)
	if rep.Enabled {
		t.Fatalf("enabled without a source: %+v", rep)
	}
	if _, ok := f.metric(t, "realtime_replication_lag_bytes", ""); ok {
		t.Fatal("replication metrics exported without a source")
	}

	commit := time.Now().Add(-3 * time.Second)
	st := decoder.Status{
		Kind: "logical", Slot: "slot1", Publication: "pub1", Connected: true,
		ReceivedPosition: 0x16B3748, ConfirmedPosition: 0x16B3700, ServerPosition: 0x16B3800, LagBytes: 0x100,
		LastCommitTime: commit, LastError: "connection reset", LastErrorTime: commit, Sessions: 2, Changes: 5,
	}
	var mu sync.Mutex
	f.insp.SetSource(func() decoder.Status { mu.Lock(); defer mu.Unlock(); return st })

	f.getJSON(t, "/admin/api/replication", &rep)
	if !rep.Enabled || rep.Kind != "logical" || rep.Slot != "slot1" || rep.ReceivedPosition != "0/16B3748" || rep.ConfirmedPosition != "0/16B3700" || rep.ServerPosition != "0/16B3800" || rep.LagBytes != 256 || rep.LastError != "connection reset" || rep.Sessions != 2 || rep.Changes != 5 {
		t.Fatalf("replication = %+v", rep)
	}
	// Pending with no measured batch yet: lag is the age of the last commit.
	if rep.LagSeconds < 3 || rep.LastCommitAge == nil || *rep.LastCommitAge < 3 {
		t.Fatalf("lag_seconds %v, last_commit_age %v", rep.LagSeconds, rep.LastCommitAge)
	}

	f.insp.ObserveDelivery(channels.DeliveryStats{Changes: 2, RLSQueries: 3, RLSDuration: 4 * time.Millisecond, Oldest: time.Now().Add(-250 * time.Millisecond)})
	f.insp.ObserveDelivery(channels.DeliveryStats{Changes: 1, Oldest: time.Now().Add(time.Hour)}) // skewed clock
	f.getJSON(t, "/admin/api/replication", &rep)
	if rep.LagSeconds != rep.LastFanoutSeconds || rep.LastFanoutSeconds < 0 || rep.LastFanoutSeconds > 1 {
		t.Fatalf("after a batch: lag %v, last fan-out %v", rep.LagSeconds, rep.LastFanoutSeconds)
	}
	for name, want := range map[string]float64{
		"realtime_pg_rls_queries_total":             3,
		"realtime_pg_rls_check_duration_seconds":    1,
		"realtime_pg_commit_fanout_latency_seconds": 2,
		"realtime_replication_lag_bytes":            256,
		"realtime_replication_connected":            1,
		"realtime_replication_sessions_total":       2,
		"realtime_replication_changes_total":        5,
	} {
		if v, ok := f.metric(t, name, ""); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}

	// Caught up: no lag in seconds either.
	mu.Lock()
	st.LagBytes, st.ConfirmedPosition, st.ServerPosition = 0, 0x16B3800, 0x16B3800
	mu.Unlock()
	f.getJSON(t, "/admin/api/replication", &rep)
	if rep.LagSeconds != 0 || rep.LagBytes != 0 {
		t.Fatalf("caught up: %+v", rep)
	}

	st2 := decoder.Status{Kind: "notify", ReceivedPosition: 41, ConfirmedPosition: 40}
	f.insp.SetSource(func() decoder.Status { return st2 })
	f.getJSON(t, "/admin/api/replication", &rep)
	if rep.ReceivedPosition != "41" || rep.ConfirmedPosition != "40" || rep.LastCommitTime != nil {
		t.Fatalf("notify positions: %+v", rep)
	}
}

func TestMetricNamesAndLabels(t *testing.T) {
	f := newFixture(t, testToken)
	f.insp.SetSource(func() decoder.Status { return decoder.Status{Kind: "logical", LastCommitTime: time.Now()} })
	f.subscribe(t, "secret-room-name", "anon")
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`^realtime_(channel|pg|replication)_[a-z0-9_]+$`)
	closed := map[string]bool{"kind": true, "reason": true}
	for _, mf := range mfs {
		if !name.MatchString(mf.GetName()) {
			t.Errorf("metric name %q", mf.GetName())
		}
		if mf.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(mf.GetName(), "_total") {
			t.Errorf("counter %q does not end in _total", mf.GetName())
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if !closed[l.GetName()] || strings.Contains(l.GetValue(), "room") {
					t.Errorf("%s has label %s=%q", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestPageIsEmbeddedAndSelfContained(t *testing.T) {
	f := newFixture(t, testToken)
	for path, ctype := range map[string]string{"/admin/": "text/html", "/admin/app.js": "text/javascript", "/admin/app.css": "text/css"} {
		res, err := http.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), ctype) || len(body) == 0 {
			t.Fatalf("%s: %d %q", path, res.StatusCode, res.Header.Get("Content-Type"))
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Fatalf("%s: CSP %q", path, csp)
		}
	}
	if code, _ := f.do(t, "POST", "/admin/", "", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /admin/: %d", code)
	}
	// No external asset: nothing in the embedded files points off-site.
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(staticFiles, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := staticFiles.ReadFile(path)
		if err != nil {
			return err
		}
		if m := external.Find(data); m != nil {
			t.Errorf("%s references %s", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The RLS row-check counters (--rls-verify verifications and
// disagreements, live-row reads) appear in the replication view and as
// metrics once a getter is installed, and not before.
func TestRLSCounters(t *testing.T) {
	f := newFixture(t, testToken)
	f.insp.SetSource(func() decoder.Status { return decoder.Status{Kind: "logical", VisibilityWaits: 4} })
	var rep Replication
	f.getJSON(t, "/admin/api/replication", &rep)
	if rep.RLS != nil || rep.VisibilityWaits != 4 {
		t.Fatalf("without an RLS getter: rls %+v, visibility waits %d", rep.RLS, rep.VisibilityWaits)
	}
	if _, ok := f.metric(t, "realtime_pg_rls_verify_disagreements_total", ""); ok {
		t.Fatal("rls counters exported without a getter")
	}
	want := RLSStats{CompiledGroups: 10, SQLGroups: 7, VerifyFraction: 0.25, VerifiedGroups: 3, Disagreements: 2, LiveReads: 1}
	f.insp.SetRLS(func() RLSStats { return want })
	f.getJSON(t, "/admin/api/replication", &rep)
	if rep.RLS == nil || *rep.RLS != want {
		t.Fatalf("rls = %+v, want %+v", rep.RLS, want)
	}
	for name, v := range map[string]float64{
		"realtime_pg_rls_compiled_groups_total":      10,
		"realtime_pg_rls_sql_groups_total":           7,
		"realtime_pg_rls_verified_groups_total":      3,
		"realtime_pg_rls_verify_disagreements_total": 2,
		"realtime_pg_rls_live_reads_total":           1,
		"realtime_pg_rls_verify_fraction":            0.25,
	} {
		if got, ok := f.metric(t, name, ""); !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, v)
		}
	}
}
