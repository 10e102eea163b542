package main

import (
	"os"
	"testing"
)

func TestParseProc(t *testing.T) {
	// A name with spaces and a ')' must not shift the fields.
	stat := []byte("4242 (realtime (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 12 0 1234 0 0\n")
	status := []byte("Name:\trealtime\nState:\tS (sleeping)\nVmRSS:\t   20480 kB\nThreads:\t12\n")
	s, err := parseProc(stat, status)
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUSeconds != 3.8 || s.RSSBytes != 20480*1024 || s.Threads != 12 {
		t.Fatalf("got %+v, want 3.8 s, 20 MB, 12 threads", s)
	}
	if _, err := parseProc([]byte("1 (x) S 1 2"), status); err == nil {
		t.Fatal("short stat line accepted")
	}
	if _, err := parseProc(stat, []byte("Name:\tx\n")); err == nil {
		t.Fatal("status without VmRSS accepted")
	}
}

func TestReadProcSelf(t *testing.T) {
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSSBytes <= 0 || s.Threads < 1 {
		t.Fatalf("implausible sample of this process: %+v", s)
	}
}

func TestParseMachineCPU(t *testing.T) {
	m, err := parseMachineCPU([]byte("cpu  100 5 50 800 45 0 0 0 7 0\ncpu0 1 2 3 4 5 6 7 8\n"))
	if err != nil {
		t.Fatal(err)
	}
	// busy = user+nice+system+irq+softirq+steal; guest is inside user.
	if m.Busy != 1.55 || m.Total != 10 {
		t.Fatalf("got %+v, want busy 1.55 s of 10 s", m)
	}
	if _, err := parseMachineCPU([]byte("intr 1 2 3")); err == nil {
		t.Fatal("file without a cpu line accepted")
	}
}
