// Package pgcluster starts and stops throwaway PostgreSQL clusters made from the
// server binaries installed on the machine (initdb, pg_ctl). Tests use it for a
// private database with logical replication; the `realtime dev` command uses it
// for its embedded default database.
//
// PostgreSQL refuses to run as root. When the current user is root, every server
// command runs through `runuser -u postgres` and the cluster directory is owned
// by that user.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Options configures a new cluster. The zero value is usable.
type Options struct {
	// Dir is the parent directory for the cluster; empty means os.TempDir().
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Settings are extra postgresql.conf lines, e.g. "max_connections = 200".
	Settings []string
	// Log receives the server's log file path; nil ignores it.
	Log func(msg string)
}

// Cluster is a running private PostgreSQL cluster. Methods are safe to call
// from one goroutine at a time.
type Cluster struct {
	// Dir is the directory that holds the data directory and the server log.
	Dir string
	// DataDir is the PGDATA of the cluster.
	DataDir string
	// Port is the TCP port the server listens on at 127.0.0.1.
	Port int
	// BinDir is where initdb, pg_ctl and postgres were found.
	BinDir string

	runAs string // unprivileged user the server runs as, "" when not root
}

// FindBinDir returns the directory holding initdb and pg_ctl: $PG_BINDIR if
// set, then the newest /usr/lib/postgresql/<v>/bin, then $PATH.
func FindBinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	best, bestV := "", -1
	for _, m := range matches {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m))))
		if err == nil && v > bestV {
			best, bestV = filepath.Dir(m), v
		}
	}
	if best != "" {
		return best, nil
	}
	p, err := exec.LookPath("initdb")
	if err != nil {
		return "", errors.New("pgcluster: no PostgreSQL server binaries found (install postgresql, or set PG_BINDIR)")
	}
	return filepath.Dir(p), nil
}

// Start creates a new cluster with wal_level=logical and starts it. The caller
// must call Stop (which also removes the directory). Start blocks until the
// server accepts connections or ctx ends.
func Start(ctx context.Context, opt Options) (*Cluster, error) {
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(opt.Dir, "pgcluster-")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: temp dir: %w", err)
	}
	c := &Cluster{Dir: dir, DataDir: filepath.Join(dir, "data"), BinDir: bin}
	if os.Geteuid() == 0 {
		c.runAs = "postgres"
		if err := c.chownToRunAs(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	port := opt.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	c.Port = port
	if out, err := c.run(ctx, "initdb", "-D", c.DataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgcluster: initdb: %w: %s", err, out)
	}
	conf := []string{
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("port = %d", port),
		fmt.Sprintf("unix_socket_directories = '%s'", dir),
		"wal_level = logical",
		"max_replication_slots = 20",
		"max_wal_senders = 20",
		"fsync = off",
		"synchronous_commit = off",
		"full_page_writes = off",
		"timezone = 'UTC'",
		"max_connections = 200",
	}
	conf = append(conf, opt.Settings...)
	f, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("pgcluster: open postgresql.conf: %w", err)
	}
	_, err = f.WriteString("\n" + strings.Join(conf, "\n") + "\n")
	f.Close()
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("pgcluster: write postgresql.conf: %w", err)
	}
	if err := c.StartServer(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	if opt.Log != nil {
		opt.Log("postgres log: " + c.LogPath())
	}
	return c, nil
}

// LogPath is the server's log file.
func (c *Cluster) LogPath() string { return filepath.Join(c.Dir, "server.log") }

// URL returns a connection string for the given database as the superuser.
func (c *Cluster) URL(db string) string {
	if db == "" {
		db = "postgres"
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// StartServer starts the (stopped) server and waits until it is ready.
func (c *Cluster) StartServer(ctx context.Context) error {
	if out, err := c.run(ctx, "pg_ctl", "-D", c.DataDir, "-l", c.LogPath(), "-w", "-t", "60", "start"); err != nil {
		logTail, _ := os.ReadFile(c.LogPath())
		return fmt.Errorf("pgcluster: pg_ctl start: %w: %s %s", err, out, lastLines(string(logTail), 20))
	}
	return nil
}

// StopServer stops the server (fast mode) but keeps its data for a restart.
func (c *Cluster) StopServer(ctx context.Context) error {
	if out, err := c.run(ctx, "pg_ctl", "-D", c.DataDir, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pgcluster: pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

// Stop stops the server immediately and removes the cluster's directory.
// It is safe to call more than once.
func (c *Cluster) Stop() error {
	if c == nil || c.Dir == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := os.Stat(filepath.Join(c.DataDir, "postmaster.pid")); err == nil {
		c.run(ctx, "pg_ctl", "-D", c.DataDir, "-m", "immediate", "-w", "-t", "30", "stop")
	}
	err := os.RemoveAll(c.Dir)
	c.Dir = ""
	return err
}

func (c *Cluster) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	path := filepath.Join(c.BinDir, tool)
	var cmd *exec.Cmd
	if c.runAs != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.Dir
	// pg_ctl start leaves the postmaster running; don't let it hold our stdout.
	logf, err := os.CreateTemp("", "pgcluster-cmd-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(logf.Name())
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Run()
	out, _ := os.ReadFile(logf.Name())
	return out, err
}

// chownToRunAs makes the cluster directory usable by the unprivileged user,
// creating that user if the system lacks it.
func (c *Cluster) chownToRunAs() error {
	u, err := user.Lookup(c.runAs)
	if err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", c.runAs).CombinedOutput(); err != nil {
			return fmt.Errorf("pgcluster: create user %s: %w: %s", c.runAs, err, out)
		}
		if u, err = user.Lookup(c.runAs); err != nil {
			return fmt.Errorf("pgcluster: look up user %s: %w", c.runAs, err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(c.Dir, uid, gid); err != nil {
		return fmt.Errorf("pgcluster: chown %s: %w", c.Dir, err)
	}
	// The parents must be traversable by the server user.
	for p := filepath.Dir(c.Dir); p != "/" && p != "."; p = filepath.Dir(p) {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o001 == 0 {
			os.Chmod(p, st.Mode().Perm()|0o001)
		}
	}
	return nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
