//go:build integration

package hop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openrealtime/realtime/tools/envoycheck"
)

// hopIdle is the proxy's stream idle timeout in this test: short, so that
// "idle for twice the timeout" takes seconds. The shipped config says 300 s.
const hopIdle = 3 * time.Second

// devInfo is the JSON line `realtime dev --json` prints once listening.
type devInfo struct {
	URL        string `json:"url"`
	AnonKey    string `json:"anon_key"`
	ServiceKey string `json:"service_key"`
	UserKey    string `json:"user_key"`
}

// repoPath resolves a path relative to the repository root (three levels up
// from this package).
func repoPath(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// lockedBuffer collects a child's output for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// startDev runs `realtime dev` on a free port and stops it with SIGTERM when
// the test ends.
func startDev(t *testing.T) (devInfo, *lockedBuffer) {
	t.Helper()
	bin := os.Getenv("REALTIME_BIN")
	if bin == "" {
		bin = repoPath(t, "bin/realtime")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("realtime binary not found at %s (build it with `go build -o bin/realtime ./cmd/realtime` "+
			"in the repository root, or set REALTIME_BIN): %v", bin, err)
	}
	// The SSE heartbeat must be shorter than the proxy's idle timeout, as
	// the default 15 s is shorter than the shipped 300 s.
	cmd := exec.Command(bin, "dev", "--addr", "127.0.0.1:0", "--json", "--sse-heartbeat", (hopIdle / 3).String())
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(logs, stdout)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatalf("realtime dev printed nothing on stdout\n--- output ---\n%s", logs.tail(4000))
		}
		var info devInfo
		if err := json.Unmarshal([]byte(line), &info); err != nil || info.URL == "" {
			t.Fatalf("realtime dev printed %q: %v", line, err)
		}
		return info, logs
	case <-time.After(90 * time.Second):
		t.Fatalf("realtime dev did not start within 90 s\n--- output ---\n%s", logs.tail(4000))
	}
	panic("unreachable")
}

// TestProxyHop runs the service behind the Go mirror of the Envoy routes
// and drives it with supabase-js (e2e/proxy/hop.mjs) and with curl -N on
// the event stream, each idle for twice the proxy's idle timeout.
func TestProxyHop(t *testing.T) {
	dev, devLogs := startDev(t)
	b, err := envoycheck.LoadFile(shippedConfig)
	if err != nil {
		t.Fatal(err)
	}
	upstream := strings.TrimPrefix(dev.URL, "http://")
	addr, g := serveGateway(t, b, Options{Upstreams: map[string]string{"realtime": upstream}, IdleTimeout: hopIdle})
	proxyURL := "http://" + addr
	t.Logf("service %s behind proxy %s (idle timeout %s)", dev.URL, proxyURL, hopIdle)

	t.Run("supabase-js", func(t *testing.T) {
		node := repoPath(t, "e2e/node_modules/.bin/node")
		if _, err := os.Stat(node); err != nil {
			t.Fatalf("Node 22 not found at %s (the npm packages of e2e/ are not installed): run scripts/setup in the repository root, or npm ci in e2e/: %v", node, err)
		}
		before := g.IdleClosed()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, repoPath(t, "e2e/proxy/hop.mjs"))
		cmd.Env = append(os.Environ(),
			"PROXY_URL="+proxyURL, "DIRECT_URL="+dev.URL,
			"ANON_KEY="+dev.AnonKey, "USER_KEY="+dev.UserKey, "SERVICE_KEY="+dev.ServiceKey,
			fmt.Sprintf("IDLE_MS=%d", hopIdle.Milliseconds()))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("hop.mjs: %v\n--- stdout ---\n%s\n--- stderr ---\n%s\n--- service ---\n%s",
				err, stdout.String(), stderr.String(), devLogs.tail(4000))
		}
		t.Logf("hop.mjs: %s", strings.TrimSpace(stdout.String()))
		// The control socket in hop.mjs must have been cut by this proxy's
		// idle timer, not by anything else.
		if g.IdleClosed() <= before {
			t.Errorf("the proxy's idle timeout closed no connection during hop.mjs; its control case did not go through it")
		}
	})

	t.Run("sse", func(t *testing.T) {
		testSSE(t, proxyURL, dev, devLogs)
	})
}

// sseStream is one curl -N on the proxy.
type sseStream struct {
	status string
	header http.Header
	lines  chan string   // body lines; closed when curl's output ends
	ended  chan struct{} // closed when curl's output ends
	mu     sync.Mutex
	all    []string
}

func (s *sseStream) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.all...)
}

// curlSSE starts curl -N on rawURL and waits for the response headers.
func curlSSE(t *testing.T, ctx context.Context, rawURL string) *sseStream {
	t.Helper()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl not found (apt-get install curl): %v", err)
	}
	cmd := exec.CommandContext(ctx, curl, "-N", "-sS", "-i", "-H", "Accept: text/event-stream", rawURL)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	s := &sseStream{header: http.Header{}, lines: make(chan string, 1024), ended: make(chan struct{})}
	headersDone := make(chan struct{})
	go func() {
		defer close(s.ended)
		defer close(s.lines)
		br := bufio.NewReader(out)
		inHeaders := true
		for {
			line, err := br.ReadString('\n')
			if line != "" || err == nil {
				line = strings.TrimRight(line, "\r\n")
				if inHeaders {
					switch {
					case s.status == "":
						s.status = line
					case line == "":
						inHeaders = false
						close(headersDone)
					default:
						k, v, _ := strings.Cut(line, ":")
						s.header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
					}
				} else {
					s.mu.Lock()
					s.all = append(s.all, line)
					s.mu.Unlock()
					s.lines <- line
				}
			}
			if err != nil {
				if inHeaders {
					close(headersDone)
				}
				return
			}
		}
	}()
	select {
	case <-headersDone:
	case <-time.After(30 * time.Second):
		t.Fatalf("no response headers from %s within 30 s; curl: %s", redact(rawURL), stderr.tail(1000))
	}
	return s
}

// redact hides the apikey in a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<url>"
	}
	q := u.Query()
	if q.Has("apikey") {
		q.Set("apikey", "REDACTED")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func testSSE(t *testing.T, proxyURL string, dev devInfo, devLogs *lockedBuffer) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	channel := "hop-sse-" + run

	bq := url.Values{"channel": {channel}, "apikey": {dev.AnonKey}}
	cq := url.Values{"schema": {"public"}, "table": {"messages"}, "event": {"INSERT"},
		"filter": {"room=eq." + channel}, "apikey": {dev.UserKey}}
	streams := map[string]*sseStream{
		"broadcast": curlSSE(t, ctx, proxyURL+"/realtime/v1/sse?"+bq.Encode()),
		"changes":   curlSSE(t, ctx, proxyURL+"/realtime/v1/sse?"+cq.Encode()),
	}
	for name, s := range streams {
		if !strings.Contains(s.status, " 200") {
			t.Fatalf("%s: GET /realtime/v1/sse through the proxy answered %q (the service must serve "+
				"server-sent events there)\n--- body ---\n%s\n--- service ---\n%s",
				name, s.status, strings.Join(drain(s, time.Second), "\n"), devLogs.tail(3000))
		}
		if ct := s.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			t.Fatalf("%s: Content-Type %q through the proxy", name, ct)
		}
	}

	// Idle for twice the proxy's idle timeout: only heartbeat comments flow.
	before := map[string]int{}
	for name, s := range streams {
		before[name] = len(s.seen())
	}
	time.Sleep(2 * hopIdle)
	for name, s := range streams {
		lines := s.seen()
		select {
		case <-s.ended:
			t.Fatalf("%s: the stream ended during the idle period; received %q", name, lines)
		default:
		}
		comments := 0
		for _, l := range lines[before[name]:] {
			if strings.HasPrefix(l, ":") {
				comments++
			}
		}
		if comments < 2 {
			t.Fatalf("%s: %d heartbeat comments in %s through the proxy; received %q", name, comments, 2*hopIdle, lines)
		}
	}

	// Then a broadcast (REST, through the proxy) and a row insert arrive.
	marker := "sse-" + run
	body, _ := json.Marshal(map[string]any{"messages": []map[string]any{{
		"topic": channel, "event": "ping", "payload": map[string]string{"marker": marker}}}})
	req, _ := http.NewRequestWithContext(ctx, "POST", proxyURL+"/realtime/v1/api/broadcast", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+dev.ServiceKey)
	req.Header.Set("apikey", dev.ServiceKey)
	mustStatus(t, req, 200, 299)

	row, _ := json.Marshal(map[string]string{"room": channel, "body": marker})
	req, _ = http.NewRequestWithContext(ctx, "POST", dev.URL+"/dev/v1/messages", bytes.NewReader(row))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+dev.UserKey)
	mustStatus(t, req, 201, 201)

	for name, s := range streams {
		if !waitLine(s, 20*time.Second, func(l string) bool {
			return strings.HasPrefix(l, "data:") && strings.Contains(l, marker)
		}) {
			t.Errorf("%s: no event carrying %q arrived through the proxy; received %q\n--- service ---\n%s",
				name, marker, s.seen(), devLogs.tail(3000))
		}
	}
}

func mustStatus(t *testing.T, req *http.Request, lo, hi int) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode < lo || res.StatusCode > hi {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL.Path, res.StatusCode, b)
	}
}

// waitLine reads body lines until one matches or the upper bound passes.
func waitLine(s *sseStream, bound time.Duration, match func(string) bool) bool {
	deadline := time.After(bound)
	for _, l := range s.seen() {
		if match(l) {
			return true
		}
	}
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				return false
			}
			if match(l) {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// drain returns whatever body lines arrive within d.
func drain(s *sseStream, d time.Duration) []string {
	deadline := time.After(d)
	for {
		select {
		case _, ok := <-s.lines:
			if !ok {
				return s.seen()
			}
		case <-deadline:
			return s.seen()
		}
	}
}
