package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openrealtime/realtime/internal/demo"
	"github.com/openrealtime/realtime/internal/pgcluster"
)

// devPGlite is the PGlite bridge started for `realtime dev --source
// notify`: cmd/pglite-bridge, or a pglite-server-compatible command from
// $PGLITE_SERVER.
type devPGlite struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser // the bridge's standard input, never written; kept so it stays open while we live
	dir   string
	port  int
	done  chan struct{}
}

// bridgeScript is the repository's bridge, relative to the repository root.
var bridgeScript = filepath.Join("cmd", "pglite-bridge", "bridge.mjs")

// pgliteCommand finds the bridge: $PGLITE_BRIDGE (a bridge.mjs), then
// $PGLITE_SERVER (any pglite-server-compatible executable, e.g. stock
// pglite-server, whose notifications the source cannot receive: it polls),
// then cmd/pglite-bridge in the working directory or next to the
// executable's bin/ folder once its npm packages are installed. relay
// reports a bridge that takes --exit-on-stdin-eof.
func pgliteCommand() (bin string, pre []string, relay bool, err error) {
	node, nodeErr := exec.LookPath("node")
	if p := os.Getenv("PGLITE_BRIDGE"); p != "" {
		if nodeErr != nil {
			return "", nil, false, errors.New("dev: $PGLITE_BRIDGE needs node on PATH")
		}
		return node, []string{p}, true, nil
	}
	if p := os.Getenv("PGLITE_SERVER"); p != "" {
		return p, nil, false, nil
	}
	roots := []string{"."}
	if exe, err := os.Executable(); err == nil {
		roots = append(roots, filepath.Join(filepath.Dir(exe), ".."))
	}
	for _, root := range roots {
		script := filepath.Join(root, bridgeScript)
		mods := filepath.Join(filepath.Dir(script), "node_modules", "@electric-sql", "pglite-socket")
		if _, err := os.Stat(mods); err != nil {
			continue
		}
		if nodeErr != nil {
			return "", nil, false, errors.New("dev: --source notify needs Node.js (node on PATH) for cmd/pglite-bridge: run scripts/setup")
		}
		return node, []string{script}, true, nil
	}
	return "", nil, false, errors.New("dev: --source notify needs the PGlite bridge: run scripts/setup (or npm ci in cmd/pglite-bridge) from the repository root, or set PGLITE_BRIDGE to its bridge.mjs")
}

// startPGlite starts the PGlite bridge on a fresh data directory with the demo
// schema and returns its URL.
func startPGlite(ctx context.Context, port int) (*devPGlite, string, error) {
	bin, pre, relay, err := pgliteCommand()
	if err != nil {
		return nil, "", err
	}
	if port == 0 {
		if port, err = pgcluster.FreePort(); err != nil {
			return nil, "", err
		}
	}
	dir, err := os.MkdirTemp("", "pglite-dev-")
	if err != nil {
		return nil, "", err
	}
	args := append(pre, "--db="+filepath.Join(dir, "data"), "--host=127.0.0.1", "--port="+strconv.Itoa(port), "--max-connections=12")
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// Its own process group: a Ctrl-C in the terminal reaches the service
	// alone, which then stops the bridge after its own connections. The
	// bridge never outlives the service, however the service ends: it
	// exits when its standard input (a pipe only we hold) ends and when
	// its parent pid changes; Pdeathsig covers stock pglite-server.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	p := &devPGlite{cmd: cmd, dir: dir, port: port, done: make(chan struct{})}
	if relay {
		cmd.Args = append(cmd.Args, "--exit-on-stdin-eof")
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			os.RemoveAll(dir)
			return nil, "", fmt.Errorf("dev: start the PGlite bridge: %w", err)
		}
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("dev: start the PGlite bridge %s: %w", bin, err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	// A new data directory takes a while to initialise.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if err := applyPGliteSchema(ctx, url); err == nil {
			return p, url, nil
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, "", fmt.Errorf("dev: the PGlite bridge did not come up: %w", err)
		}
		select {
		case <-p.done:
			p.stop()
			return nil, "", errors.New("dev: the PGlite bridge exited")
		case <-ctx.Done():
			p.stop()
			return nil, "", fmt.Errorf("dev: PGlite bridge start interrupted: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// applyPGliteSchema connects in exec mode (no named statements: PGlite
// shares one session between sockets) and applies the demo schema.
func applyPGliteSchema(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, demo.SchemaSQL)
	return err
}

// stop ends the bridge cleanly and removes its data.
func (p *devPGlite) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	os.RemoveAll(p.dir)
}
