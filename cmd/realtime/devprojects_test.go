package main

import (
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `realtime dev --projects 2` prints one line per project; its curl line,
// run by the real curl, reaches a client of that project only.
func TestDevProjects(t *testing.T) {
	dev := startDevLines(t, "--addr", "127.0.0.1:0", "--projects", "2")
	lines, exited := dev.lines, dev.exited
	line := regexp.MustCompile(`^(project\d+)  http://(project\d+\.localhost:\d+)  db \S+  secret \S+  anon (\S+)  service \S+  curl (.+)$`)
	var got [][]string
	for len(got) < 2 {
		select {
		case l := <-lines:
			if !strings.HasPrefix(l, "project") {
				continue
			}
			m := line.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("project line: %q", l)
			}
			got = append(got, m)
		case err := <-exited:
			t.Fatalf("realtime dev exited: %v", err)
		case <-time.After(4 * time.Minute):
			t.Fatal("realtime dev printed no project lines")
		}
	}
	addr := "127.0.0.1:" + got[0][2][strings.LastIndex(got[0][2], ":")+1:]
	c1, _, err := dialHost(t, addr, got[0][2], got[0][3])
	if err != nil {
		t.Fatal(err)
	}
	c1.join("realtime:room", got[0][3])
	// project2's curl first: project1's client must not see it.
	for _, m := range []([]string){got[1], got[0]} {
		out, err := exec.Command("bash", "-c", "curl -sS -o /dev/null -w '%{http_code}' --resolve "+m[2]+":127.0.0.1 "+m[4]).CombinedOutput()
		if err != nil || string(out) != "202" {
			t.Fatalf("%s curl: %s %v", m[1], out, err)
		}
	}
	b := c1.next("broadcast", 10*time.Second)
	if !strings.Contains(string(b.Payload), `"from":"project1"`) {
		t.Fatalf("project1's client got %s", b.Payload)
	}
	dev.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatal("realtime dev did not stop on SIGINT")
	}
}

// --pglite-projects counts among --projects: more PGlite projects than
// projects is refused before anything starts.
func TestDevPGliteProjectsBounded(t *testing.T) {
	for _, args := range [][]string{{"--projects", "2", "--pglite-projects", "3"}, {"--projects", "2", "--pglite-projects", "-1"}} {
		err := runDev(append([]string{"--addr", "127.0.0.1:0"}, args...))
		if err == nil || !strings.Contains(err.Error(), "--pglite-projects must be 0 to --projects (2)") {
			t.Fatalf("%v: %v", args, err)
		}
	}
}
