package main

import (
	"context"
	"errors"
	"fmt"
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

// pgliteVersion is the bridge package started through npx when no local
// install is found.
const pgliteVersion = "@electric-sql/pglite-socket@0.2.17"

// devPGlite is a pglite-server started for `realtime dev --source notify`.
type devPGlite struct {
	cmd  *exec.Cmd
	dir  string
	port int
	done chan struct{}
}

// pgliteCommand finds pglite-server: $PGLITE_SERVER, the repository's test
// install, or npx (which fetches the pinned package from the npm registry).
func pgliteCommand() (string, []string, error) {
	if p := os.Getenv("PGLITE_SERVER"); p != "" {
		return p, nil, nil
	}
	local := filepath.Join("internal", "pglitetest", "node", "node_modules", ".bin", "pglite-server")
	if _, err := os.Stat(local); err == nil {
		return local, nil, nil
	}
	if npx, err := exec.LookPath("npx"); err == nil {
		return npx, []string{"--yes", "--package=" + pgliteVersion, "pglite-server"}, nil
	}
	return "", nil, errors.New("dev: --source notify needs pglite-server: run scripts/setup (or npm ci in internal/pglitetest/node), install Node.js for npx, or set PGLITE_SERVER")
}

// startPGlite starts pglite-server on a fresh data directory with the demo
// schema and returns its URL.
func startPGlite(ctx context.Context, port int) (*devPGlite, string, error) {
	bin, pre, err := pgliteCommand()
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("dev: start pglite-server: %w", err)
	}
	p := &devPGlite{cmd: cmd, dir: dir, port: port, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	// A new data directory takes a while to initialise.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if err := applyPGliteSchema(ctx, url); err == nil {
			return p, url, nil
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, "", fmt.Errorf("dev: pglite-server did not come up: %w", err)
		}
		select {
		case <-p.done:
			p.stop()
			return nil, "", errors.New("dev: pglite-server exited")
		case <-ctx.Done():
			p.stop()
			return nil, "", fmt.Errorf("dev: pglite-server start interrupted: %w", ctx.Err())
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

// stop ends pglite-server cleanly and removes its data.
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
