package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc. It is 100 on
// every Linux architecture Go supports (the kernel ABI fixes it).
const clockTicks = 100

// ProcSample is one reading of a process from /proc.
type ProcSample struct {
	RSSBytes   int64   `json:"rss_bytes"`
	CPUSeconds float64 `json:"cpu_seconds"` // user + system
	Threads    int     `json:"threads"`
}

// readProc samples /proc/<pid>/stat and /proc/<pid>/status. pid 0 means
// this process.
func readProc(pid int) (ProcSample, error) {
	dir := "/proc/self"
	if pid > 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return ProcSample{}, fmt.Errorf("procstat: %w", err)
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return ProcSample{}, fmt.Errorf("procstat: %w", err)
	}
	return parseProc(stat, status)
}

// parseProc extracts CPU time from a stat line and VmRSS/Threads from a
// status file.
func parseProc(stat, status []byte) (ProcSample, error) {
	var s ProcSample
	// The command name (field 2) may contain spaces and parentheses; the
	// fields after the last ')' are fixed.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("procstat: malformed stat line")
	}
	f := strings.Fields(string(stat[i+1:]))
	// After ')': state(3) ppid(4) ... utime is field 14, stime field 15,
	// i.e. indexes 11 and 12 here.
	if len(f) < 13 {
		return s, fmt.Errorf("procstat: stat line has %d fields after the name", len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("procstat: bad utime/stime %q %q", f[11], f[12])
	}
	s.CPUSeconds = float64(ut+st) / clockTicks
	found := false
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "VmRSS":
			n, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
			if err != nil {
				return s, fmt.Errorf("procstat: bad VmRSS %q", v)
			}
			s.RSSBytes, found = n*1024, true
		case "Threads":
			s.Threads, _ = strconv.Atoi(v)
		}
	}
	if !found {
		return s, fmt.Errorf("procstat: no VmRSS in status")
	}
	return s, nil
}

// MachineCPU is the machine-wide CPU time from /proc/stat, in seconds.
type MachineCPU struct {
	Busy, Total float64
}

// readMachineCPU sums the aggregate "cpu" line of /proc/stat.
func readMachineCPU() (MachineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}, fmt.Errorf("procstat: %w", err)
	}
	return parseMachineCPU(b)
}

func parseMachineCPU(b []byte) (MachineCPU, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return MachineCPU{}, fmt.Errorf("procstat: no aggregate cpu line")
	}
	var m MachineCPU
	for i, v := range f[1:] {
		if i >= 8 { // guest times are already counted in user/nice
			break
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return MachineCPU{}, fmt.Errorf("procstat: bad cpu field %q", v)
		}
		t := float64(n) / clockTicks
		m.Total += t
		if i != 3 && i != 4 { // idle, iowait
			m.Busy += t
		}
	}
	return m, nil
}
