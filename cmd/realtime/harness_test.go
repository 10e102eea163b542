package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/openrealtime/realtime/internal/demo"
	"github.com/openrealtime/realtime/internal/pgcluster"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// TestMain lets the test binary run as the service: the integration tests
// start it as a child process (so they can kill -9 it) without a separate
// build step.
func TestMain(m *testing.M) {
	if args := os.Getenv("REALTIME_TEST_EXEC"); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			panic(err)
		}
		os.Args = append([]string{"realtime"}, argv...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// env is a database with the demo schema plus keys.
type env struct {
	cluster *pgcluster.Cluster
	keys    demo.Keys
	db      *pgx.Conn
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	conn, err := pgx.Connect(ctx, c.URL(""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, demo.SchemaSQL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	keys, err := demo.MakeKeys(demo.NewSecret(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &env{cluster: c, keys: keys, db: conn}
}

// service is the service running as a child process.
type service struct {
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex // guards logs
	logs strings.Builder
}

// output returns what the service has logged so far.
func (s *service) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// launch runs `realtime serve --addr addr args...` from the test binary
// (see TestMain), waits for /healthz and kills it at cleanup. An empty addr
// picks a free port.
func launch(tb testing.TB, addr string, args ...string) *service {
	tb.Helper()
	if addr == "" {
		port, err := pgcluster.FreePort()
		if err != nil {
			tb.Fatal(err)
		}
		addr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	argv, _ := json.Marshal(append([]string{"serve", "--addr", addr}, args...))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "REALTIME_TEST_EXEC="+string(argv))
	s := &service{cmd: cmd, addr: addr}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.logs.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
		}
	}()
	tb.Cleanup(func() {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		if tb.Failed() {
			tb.Logf("service log:\n%s", s.output())
		}
	})
	// A hand-off node (a cluster's default) answers 503 until enough nodes
	// run for its change stream: answering at all is enough here
	// (startCluster waits for 200).
	clustered := (slices.Contains(args, "--cluster-embedded") || slices.Contains(args, "--nats-url")) &&
		!slices.Contains(args, "--cluster-handoff=false")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 || clustered {
				return s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("service did not become ready:\n%s", s.output())
	return nil
}

// startService runs the service on the env's database.
func (e *env) startService(t *testing.T, addr string, extra ...string) *service {
	t.Helper()
	return launch(t, addr, append([]string{"--jwt-secret", e.keys.Secret, "--db-url", e.cluster.URL(""), "--log-level", "debug"}, extra...)...)
}

// kill9 ends the service without any chance to clean up.
func (s *service) kill9() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
}

// wsClient is a raw vsn 2.0.0 protocol client.
type wsClient struct {
	t      *testing.T
	ws     *websocket.Conn
	frames chan phoenix.Message
}

func (s *service) dial(t *testing.T, apikey string) *wsClient {
	t.Helper()
	return s.dialDecoding(t, apikey, nil)
}

// dialDecoding is dial whose client passes binary frames to binary (nil:
// they are dropped), which may turn them into messages.
func (s *service) dialDecoding(t *testing.T, apikey string, binary func([]byte) (phoenix.Message, bool)) *wsClient {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/realtime/v1/websocket?vsn=2.0.0&apikey="+apikey, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &wsClient{t: t, ws: ws, frames: make(chan phoenix.Message, 10000)}
	go func() {
		defer close(c.frames)
		for {
			typ, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if typ != websocket.TextMessage {
				if binary != nil {
					if m, ok := binary(data); ok {
						c.frames <- m
					}
				}
				continue
			}
			if m, err := phoenix.DecodeText(phoenix.V2, data); err == nil {
				c.frames <- m
			}
		}
	}()
	t.Cleanup(func() { ws.Close() })
	return c
}

func (c *wsClient) join(topic string, token string, bindings ...map[string]any) {
	c.t.Helper()
	if bindings == nil {
		bindings = []map[string]any{}
	}
	p, _ := json.Marshal(map[string]any{"config": map[string]any{"postgres_changes": bindings}, "access_token": token})
	c.ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, "1", "1", topic, "phx_join", p))
	m := c.next("phx_reply", 10*time.Second)
	if !strings.Contains(string(m.Payload), `"status":"ok"`) {
		c.t.Fatalf("join %s: %s", topic, m.Payload)
	}
}

// next returns the next frame with the event, skipping others.
func (c *wsClient) next(event string, timeout time.Duration) phoenix.Message {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("connection closed while waiting for %s", event)
			}
			if m.Event == event {
				return m
			}
		case <-deadline:
			c.t.Fatalf("no %s within %s", event, timeout)
		}
	}
}

// changeRecord extracts data.record (or old_record) and type from a
// postgres_changes payload.
func changeRecord(t *testing.T, m phoenix.Message) (typ string, rec map[string]any, errs []string) {
	var p struct {
		Data struct {
			Type      string         `json:"type"`
			Record    map[string]any `json:"record"`
			OldRecord map[string]any `json:"old_record"`
			Errors    []string       `json:"errors"`
		} `json:"data"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		t.Fatalf("bad change %s", m.Payload)
	}
	if p.Data.Type == "DELETE" {
		return p.Data.Type, p.Data.OldRecord, p.Data.Errors
	}
	return p.Data.Type, p.Data.Record, p.Data.Errors
}

func (e *env) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := e.db.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func pgxConnect(url string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.Connect(ctx, url)
}

// startClusterAdmin starts a private PostgreSQL cluster and a superuser
// connection to its postgres database, both closed when the test ends.
func startClusterAdmin(t *testing.T, ctx context.Context) (*pgcluster.Cluster, *pgx.Conn) {
	t.Helper()
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	admin, err := pgxConnect(c.URL(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	return c, admin
}
