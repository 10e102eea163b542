package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"time"
)

// The soak's hostile clients run, by default, in a child process of this
// tool limited to one core (GOMAXPROCS=1): in the measuring process their
// goroutines (thousands of sockets, resume streams, dial storms) would
// share a scheduler with the ordinary clients and delay the receipt
// timestamps of the very latencies the soak reports, which says nothing
// about the service. Real attackers run on other hosts; here they still
// share the machine's cores, and their CPU is reported
// (docs/benchmarks.md, "Soak").

// start runs the attacks for d, in this process or in a child
// (--attackers), and returns the child's CPU in cores (0 in process).
func (a *attacks) start(ctx context.Context, d time.Duration) float64 {
	if a.cfg.Soak.Attackers == "inproc" {
		a.run(ctx, d)
		return 0
	}
	cores, err := a.runChild(ctx, d)
	if err != nil {
		a.log.Error("soak: attacker process", "err", err)
		for _, st := range a.stats {
			st.Errors.Add(1)
			st.note("attacker process: %v", err)
		}
	}
	return cores
}

// runChild runs this tool again with the same flags plus --attack-child d
// and GOMAXPROCS=1, and merges the counts it prints into a.stats. When
// ctx ends first the child is interrupted and still reports.
func (a *attacks) runChild(ctx context.Context, d time.Duration) (float64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find this executable: %w", err)
	}
	args := append(append([]string(nil), os.Args[1:]...),
		"--attack-child", d.String(), "--json=", "--cpuprofile=", "--quiet")
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	start := time.Now()
	runErr := cmd.Run()
	var cores float64
	if ps := cmd.ProcessState; ps != nil {
		if wall := time.Since(start).Seconds(); wall > 0 {
			cores = (ps.UserTime() + ps.SystemTime()).Seconds() / wall
		}
	}
	if err := a.mergeChild(out.Bytes()); err != nil {
		return cores, fmt.Errorf("attacker process (%v): %w", runErr, err)
	}
	return cores, nil
}

// childStats is one attack's counts as the child prints them.
type childStats struct {
	Attempts, Refused, Accepted, Errors int64
	Notes                               []string
}

// mergeChild adds the counts printed by an attacker child to a.stats.
func (a *attacks) mergeChild(out []byte) error {
	var got map[string]childStats
	if err := json.Unmarshal(out, &got); err != nil {
		return fmt.Errorf("read its counts: %w", err)
	}
	for name, c := range got {
		st := a.stats[name]
		if st == nil {
			return fmt.Errorf("unknown attack %q in its counts", name)
		}
		st.Attempts.Add(c.Attempts)
		st.Refused.Add(c.Refused)
		st.Accepted.Add(c.Accepted)
		st.Errors.Add(c.Errors)
		for _, n := range c.Notes {
			st.note("%s", n)
		}
	}
	return nil
}

// runAttackChild is the attacker child (--attack-child): it runs the
// selected attacks for cfg.Soak.Child and writes their counts to w.
func runAttackChild(ctx context.Context, cfg *config, log *slog.Logger, w io.Writer) error {
	a := newAttacks(cfg, log)
	a.run(ctx, cfg.Soak.Child)
	return json.NewEncoder(w).Encode(a.stats)
}
