package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openrealtime/realtime/internal/demo"
	"github.com/openrealtime/realtime/internal/pglitetest"
)

// A signal to `realtime dev` stops its database and removes the data: the
// PostgreSQL postmaster (or the PGlite bridge child with --source notify)
// is gone and no data directory is left behind. The child's TMPDIR is a
// directory of the test's own, so "left behind" is any entry in it. The
// signal goes to the service's pid alone, as a process manager sends it.
func TestDevStopsItsDatabaseOnSignal(t *testing.T) {
	cases := []struct {
		name   string
		source string
		sig    syscall.Signal
	}{
		{"logical/SIGTERM", "logical", syscall.SIGTERM},
		{"logical/SIGINT", "logical", syscall.SIGINT},
		{"notify/SIGTERM", "notify", syscall.SIGTERM},
		{"notify/SIGINT", "notify", syscall.SIGINT},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			env := []string{"TMPDIR=" + tmp}
			if c.source == "notify" {
				env = append(env, bridgeEnv(t))
			}
			d := startDevChild(t, env, "--source", c.source)

			// The database processes: the postmaster (pg_ctl detaches it
			// from us) and every child of `realtime dev`.
			var pids []int
			if c.source == "logical" {
				pid, err := postmasterPID(tmp)
				if err != nil {
					t.Fatal(err)
				}
				pids = append(pids, pid)
			}
			kids := childrenOf(d.cmd.Process.Pid)
			if c.source == "notify" {
				bridgeChild(t, kids)
			}
			pids = append(pids, kids...)
			if left := leftovers(t, tmp); len(left) == 0 {
				t.Fatalf("no database directory under the child's TMPDIR %s while running", tmp)
			}

			if err := d.cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-d.exited:
				if err != nil {
					t.Fatalf("realtime dev exited with %v after %v\n%s", err, c.sig, d.out.String())
				}
			case <-time.After(2 * time.Minute):
				d.cmd.Process.Kill()
				t.Fatalf("realtime dev still running 2 minutes after %v\n%s", c.sig, d.out.String())
			}
			for _, pid := range pids {
				if err := waitProcessGone(pid, time.Minute); err != nil {
					t.Error(err)
				}
			}
			if left := leftovers(t, tmp); len(left) > 0 {
				t.Errorf("left behind in TMPDIR after %v: %v", c.sig, left)
			}
		})
	}
}

// The PGlite bridge of `realtime dev --source notify` never outlives the
// service: when the service is killed with SIGKILL (no cleanup runs) the
// bridge notices that its parent is gone, shuts down and stops listening.
func TestDevBridgeDiesWithService(t *testing.T) {
	d := startDevChild(t, []string{"TMPDIR=" + t.TempDir(), bridgeEnv(t)}, "--source", "notify")
	pid := bridgeChild(t, childrenOf(d.cmd.Process.Pid))
	port := listeningPort(t, pid)
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.done
	if err := waitProcessGone(pid, time.Minute); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second); err == nil {
		c.Close()
		t.Fatalf("port %d still accepts connections after the bridge's parent was killed", port)
	}
}

// bridgeEnv points `realtime dev` at the repository's bridge.
func bridgeEnv(t *testing.T) string {
	t.Helper()
	script, err := pglitetest.Bridge()
	if err != nil {
		t.Fatal(err)
	}
	return "PGLITE_BRIDGE=" + script
}

// bridgeChild returns the one process among kids (the service's children)
// that runs bridge.mjs.
func bridgeChild(t *testing.T, kids []int) int {
	t.Helper()
	var found []int
	for _, k := range kids {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", k))
		if bytes.Contains(cmdline, []byte("bridge.mjs")) {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		t.Fatalf("realtime dev --source notify: want one bridge.mjs child, found %v among %v", found, kids)
	}
	return found[0]
}

// listeningPort returns the TCP port pid listens on (from /proc/net/tcp and
// the process's socket inodes).
func listeningPort(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	tab, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(tab), "\n")[1:] {
		f := strings.Fields(line)
		// local_address st ... inode; st 0A is LISTEN.
		if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
			continue
		}
		_, hexPort, _ := strings.Cut(f[1], ":")
		p, err := strconv.ParseInt(hexPort, 16, 32)
		if err == nil {
			return int(p)
		}
	}
	t.Fatalf("process %d listens on no TCP port", pid)
	return 0
}

// The banner's export line sets the variables the README's curl line uses,
// and the banner names the inspector and its token.
func TestDevBannerMatchesREADME(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := demo.MakeKeys("secret", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	printDevBanner(&b, "127.0.0.1:4000", "postgres://db", "admintok", keys)
	banner := b.String()
	var export string
	for _, line := range strings.Split(banner, "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "export ") {
			export = l
		}
	}
	if export == "" {
		t.Fatalf("banner has no export line:\n%s", banner)
	}
	for _, want := range []string{"ANON_KEY=" + keys.Anon, "USER_KEY=" + keys.User, "SERVICE_KEY=" + keys.Service, "ADMIN_TOKEN=admintok"} {
		if !strings.Contains(export, want) {
			t.Errorf("export line lacks %s: %s", want, export)
		}
	}
	vars := regexp.MustCompile(`\$([A-Z_]+)`)
	curls := 0
	for _, line := range strings.Split(string(readme), "\n") {
		if !strings.Contains(line, "curl ") {
			continue
		}
		for _, v := range vars.FindAllStringSubmatch(line, -1) {
			curls++
			if !strings.Contains(export, " "+v[1]+"=") {
				t.Errorf("README's curl line uses $%s, which the banner's export line does not set", v[1])
			}
		}
	}
	if curls == 0 {
		t.Error("README has no curl line with $VARIABLES; this test lost its subject")
	}
	for _, want := range []string{"http://127.0.0.1:4000/admin/", "admintok", "Node 22", "npm install @supabase/supabase-js", "$USER_KEY", "$ANON_KEY"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q", want)
		}
	}
}

// devChild is `realtime dev --json` running from the test binary.
type devChild struct {
	cmd    *exec.Cmd
	out    *lockedLog
	exited chan error    // receives the exit once
	done   chan struct{} // closed when the child has exited
}

// lockedLog collects a child's stderr for failure messages.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// devLines is a `realtime dev` child streaming its standard output.
type devLines struct {
	cmd    *exec.Cmd
	log    *lockedLog  // its standard error
	lines  chan string // its standard output, line by line
	exited chan error  // its end
}

// startDevLines runs `realtime dev args...` as a child process and streams
// its standard output line by line. It is killed at cleanup, and its
// output logged if the test failed.
func startDevLines(t *testing.T, args ...string) *devLines {
	t.Helper()
	argv, _ := json.Marshal(append([]string{"dev"}, args...))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "REALTIME_TEST_EXEC="+string(argv))
	log := &lockedLog{}
	cmd.Stderr = log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &devLines{cmd: cmd, log: log, lines: make(chan string, 16), exited: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
		d.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("realtime dev output:\n%s", log.String())
		}
	})
	return d
}

// startDevChild runs `realtime dev --addr 127.0.0.1:0 --json args...` with
// extra environment, waits for its JSON line and kills it at cleanup if it
// still runs.
func startDevChild(t *testing.T, env []string, args ...string) *devChild {
	t.Helper()
	argv, _ := json.Marshal(append([]string{"dev", "--addr", "127.0.0.1:0", "--json"}, args...))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "REALTIME_TEST_EXEC="+string(argv)), env...)
	d := &devChild{cmd: cmd, out: &lockedLog{}, exited: make(chan error, 1), done: make(chan struct{})}
	cmd.Stderr = d.out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		if sc.Scan() {
			lines <- sc.Text()
		}
		for sc.Scan() {
		}
		d.exited <- cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("realtime dev output:\n%s", d.out.String())
		}
	})
	select {
	case line := <-lines:
		var info map[string]string
		if err := json.Unmarshal([]byte(line), &info); err != nil || info["url"] == "" || info["admin_token"] == "" {
			t.Fatalf("realtime dev printed %q (%v)", line, err)
		}
	case err := <-d.exited:
		t.Fatalf("realtime dev exited before it was ready: %v\n%s", err, d.out.String())
	case <-time.After(4 * time.Minute): // a fresh PGlite initialises slowly on a busy machine
		t.Fatalf("realtime dev not ready within 4 minutes\n%s", d.out.String())
	}
	return d
}

// postmasterPID reads the pid of the one cluster under tmp.
func postmasterPID(tmp string) (int, error) {
	files, _ := filepath.Glob(filepath.Join(tmp, "pgcluster-*", "data", "postmaster.pid"))
	if len(files) != 1 {
		return 0, fmt.Errorf("want one postmaster.pid under %s, found %v", tmp, files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(first))
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	var kids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(p); ok && ppid == pid {
			kids = append(kids, p)
		}
	}
	return kids
}

// procStat returns a process's state letter and parent pid from
// /proc/<pid>/stat.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0][0], ppid, true
}

// waitProcessGone waits until pid no longer runs (gone, or a zombie not yet
// reaped by init).
func waitProcessGone(pid int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		err := syscall.Kill(pid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		if state, _, ok := procStat(pid); !ok || state == 'Z' {
			return nil
		}
		if time.Now().After(deadline) {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			return fmt.Errorf("process %d (%s) still runs %s after realtime dev exited", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}), limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leftovers lists what the child left in its TMPDIR.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
