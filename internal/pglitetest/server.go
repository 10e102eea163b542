package pglitetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Options configures a server. The zero value is usable.
type Options struct {
	// Dir is the data directory. "" means a fresh copy of the template in a
	// temporary directory (removed by [Start]'s cleanup); an existing
	// directory is used as it is, so a test can restart on the same data.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// MaxConnections is the bridge's --max-connections; 0 means 8. The
	// bridge refuses (with a bare EOF) every connection beyond it.
	MaxConnections int
	// Stock starts stock pglite-server, which hands every notification to
	// the socket that committed, instead of the repository's bridge
	// (cmd/pglite-bridge), which relays them to every listening socket.
	Stock bool
	// Module is the bridge's --module: an ES module called with the PGlite
	// instance after the start (ignored with Stock).
	Module string
}

// Server is a running bridge: cmd/pglite-bridge, or stock pglite-server
// with [Options.Stock]. Its methods are safe to call from one
// goroutine at a time.
type Server struct {
	// Dir is the data directory.
	Dir string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// MaxConnections is the bridge's connection limit.
	MaxConnections int
	// Stock reports stock pglite-server (no notification relay).
	Stock bool
	// Module is the bridge's host module, if any.
	Module string

	cmd   *exec.Cmd
	stdin io.WriteCloser // the bridge's standard input, never written: it ends when we do
	done  chan struct{}  // closed when the process has exited
	logs  *tailBuffer
}

// startTimeout bounds the start of a server on an existing data directory;
// initialising a new one may take much longer on a busy machine.
const (
	startTimeout = 60 * time.Second
	initTimeout  = 5 * time.Minute
	stopTimeout  = 15 * time.Second
)

// NodeDir returns the npm folder holding pglite-server.
func NodeDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "node")
}

// BridgeDir returns the npm folder of the repository's bridge,
// cmd/pglite-bridge.
func BridgeDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "cmd", "pglite-bridge")
}

// Bridge returns the bridge script (cmd/pglite-bridge/bridge.mjs, run with
// node), or an error that says what to run to install its packages.
func Bridge() (string, error) {
	dir := BridgeDir()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@electric-sql", "pglite-socket")); err != nil {
		return "", fmt.Errorf("pglitetest: the npm packages of %s are not installed: "+
			"run scripts/setup in the repository root, or npm ci in cmd/pglite-bridge", dir)
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", errors.New("pglitetest: node is not on PATH: run scripts/setup in the repository root (it installs Node.js and the npm packages)")
	}
	return filepath.Join(dir, "bridge.mjs"), nil
}

// Binary returns the stock pglite-server executable, or an error that says
// what to run to install it.
func Binary() (string, error) {
	bin := filepath.Join(NodeDir(), "node_modules", ".bin", "pglite-server")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("pglitetest: the npm packages of %s are not installed (%s is missing): "+
			"run scripts/setup in the repository root, or npm ci in internal/pglitetest/node", NodeDir(), bin)
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", errors.New("pglitetest: node is not on PATH: run scripts/setup in the repository root (it installs Node.js and the npm packages)")
	}
	return bin, nil
}

// Start starts a server for the test and stops it in t.Cleanup. It fails
// the test (never skips it) when the server cannot start, e.g. when the npm
// packages are not installed.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Dir == "" {
		tmpl, err := Template()
		if err != nil {
			t.Fatal(err)
		}
		o.Dir = filepath.Join(t.TempDir(), "pgdata")
		if err := copyDir(tmpl, o.Dir); err != nil {
			t.Fatalf("pglitetest: copy template: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), initTimeout)
	defer cancel()
	s, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("pglitetest: %v", err)
		}
		if t.Failed() {
			t.Logf("bridge output (tail):\n%s", s.Logs())
		}
	})
	return s
}

// New starts the bridge on o.Dir (created and initialised if missing)
// and waits until it answers a query. The caller must call Stop.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.Dir == "" {
		return nil, errors.New("pglitetest: New needs a data directory")
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 8
	}
	if o.Port == 0 {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		o.Port = p
	}
	s := &Server{Dir: o.Dir, Port: o.Port, MaxConnections: o.MaxConnections, Stock: o.Stock, Module: o.Module}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context) error {
	args := []string{
		"--db=" + s.Dir,
		"--host=127.0.0.1",
		"--port=" + strconv.Itoa(s.Port),
		"--max-connections=" + strconv.Itoa(s.MaxConnections),
	}
	var cmd *exec.Cmd
	var err error
	if s.Stock {
		bin, err := Binary()
		if err != nil {
			return err
		}
		cmd = exec.Command(bin, args...)
	} else {
		var script string
		script, err = Bridge()
		if err != nil {
			return err
		}
		// The bridge ends when its standard input does: when the test
		// binary dies, however it dies.
		args = append([]string{script, "--exit-on-stdin-eof"}, args...)
		if s.Module != "" {
			args = append(args, "--module="+s.Module)
		}
		cmd = exec.Command("node", args...)
		// Kept in s.stdin: a collected *os.File would close it.
		if s.stdin, err = cmd.StdinPipe(); err != nil {
			return fmt.Errorf("pglitetest: %w", err)
		}
	}
	s.logs = &tailBuffer{max: 64 << 10}
	cmd.Stdout = s.logs
	cmd.Stderr = s.logs
	// If the test binary dies, the server goes too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pglitetest: start %s: %w", cmd.Path, err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		return fmt.Errorf("pglitetest: %w; output:\n%s", err, s.Logs())
	}
	return nil
}

// waitReady polls until a connection answers SELECT 1.
func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(startTimeout)
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("bridge exited during start (%v)", s.cmd.ProcessState)
		default:
		}
		last = s.ping(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bridge not ready: %w (last error: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("bridge not ready in time: %v", last)
}

func (s *Server) ping(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := pgconn.Connect(pctx, s.URL())
	if err != nil {
		return err
	}
	defer c.Close(pctx)
	_, err = c.Exec(pctx, "SELECT 1").ReadAll()
	return err
}

// URL is the connection string of the server (TLS off: the bridge refuses
// it).
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
}

// Stop ends the server with SIGTERM (a clean shutdown that flushes the data
// directory), or SIGKILL if it does not exit in time. Stopping a stopped
// server does nothing.
func (s *Server) Stop() error {
	if s.cmd == nil {
		return nil
	}
	defer func() { s.cmd = nil }()
	select {
	case <-s.done:
		return nil
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(stopTimeout):
		s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("bridge did not stop within %s of SIGTERM; killed", stopTimeout)
	}
}

// Kill ends the server with SIGKILL, without a clean shutdown.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart stops the server if it runs and starts it again on the same data
// directory and port.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.start(ctx)
}

// Logs returns the tail of the server's output.
func (s *Server) Logs() string {
	if s.logs == nil {
		return ""
	}
	return s.logs.String()
}

var (
	templateOnce sync.Once
	templatePath string
	templateErr  error
)

// Template returns a data directory initialised by the bridge and
// cleanly shut down, to be copied, never used directly. It is created once
// per machine and lock file, under os.TempDir().
func Template() (string, error) {
	templateOnce.Do(func() { templatePath, templateErr = makeTemplate() })
	return templatePath, templateErr
}

func makeTemplate() (string, error) {
	if _, err := Bridge(); err != nil {
		return "", err
	}
	lock, err := os.ReadFile(filepath.Join(BridgeDir(), "package-lock.json"))
	if err != nil {
		return "", fmt.Errorf("pglitetest: %w", err)
	}
	sum := sha256.Sum256(lock)
	root := filepath.Join(os.TempDir(), "realtime-pglitetest")
	final := filepath.Join(root, "template-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(filepath.Join(final, "PG_VERSION")); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("pglitetest: %w", err)
	}
	var nonce [6]byte
	rand.Read(nonce[:])
	tmp := final + ".tmp-" + hex.EncodeToString(nonce[:])
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), initTimeout)
	defer cancel()
	s, err := New(ctx, Options{Dir: tmp, MaxConnections: 2})
	if err != nil {
		return "", fmt.Errorf("pglitetest: initialise template: %w", err)
	}
	if err := s.Stop(); err != nil {
		return "", fmt.Errorf("pglitetest: initialise template: %w", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "PG_VERSION")); err != nil {
		return "", fmt.Errorf("pglitetest: initialise template: no PG_VERSION: %w; output:\n%s", err, s.Logs())
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another process made it first.
		if _, serr := os.Stat(filepath.Join(final, "PG_VERSION")); serr == nil {
			return final, nil
		}
		return "", fmt.Errorf("pglitetest: %w", err)
	}
	return final, nil
}

// copyDir copies the tree at src to dst (which must not exist).
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, info.Mode().Perm()|0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pglitetest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it. Safe for concurrent
// use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

// Write appends p, keeping only the last max bytes; it never fails.
func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// String returns the kept bytes without surrounding whitespace.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
