package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// What an attacker child prints is what the parent reports: counts and
// notes survive the trip, and --attackers takes only its two values.
func TestAttackChildCountsReachTheParent(t *testing.T) {
	base := []string{"--url", "http://127.0.0.1:4000/", "--jwt-secret", "s", "--db-url", "postgres://x", "--load", "soak",
		"--attacks", "metrics-scrape,socket-flood"}
	cfg, err := parseConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Soak.Attackers != "process" {
		t.Fatalf("default --attackers %q, want process", cfg.Soak.Attackers)
	}
	if _, err := parseConfig(append(base, "--attackers", "thread")); err == nil {
		t.Fatal("--attackers thread accepted")
	}
	log := slog.New(slog.DiscardHandler)
	child := newAttacks(cfg, log)
	child.stats["metrics-scrape"].Attempts.Add(7)
	child.stats["metrics-scrape"].Refused.Add(7)
	child.stats["metrics-scrape"].note("HTTP 401")
	child.stats["socket-flood"].Accepted.Add(1996)
	child.stats["socket-flood"].Errors.Add(4)
	var out bytes.Buffer
	if err := json.NewEncoder(&out).Encode(child.stats); err != nil {
		t.Fatal(err)
	}
	parent := newAttacks(cfg, log)
	if err := parent.mergeChild(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	ms, sf := parent.stats["metrics-scrape"], parent.stats["socket-flood"]
	if ms.Attempts.Load() != 7 || ms.Refused.Load() != 7 || strings.Join(ms.notes(), ";") != "HTTP 401" {
		t.Fatalf("metrics-scrape merged as %d attempts, %d refused, notes %v", ms.Attempts.Load(), ms.Refused.Load(), ms.notes())
	}
	if sf.Accepted.Load() != 1996 || sf.Errors.Load() != 4 {
		t.Fatalf("socket-flood merged as %d accepted, %d errors", sf.Accepted.Load(), sf.Errors.Load())
	}
	// Counts for an attack the parent did not start are an error, not lost.
	if err := parent.mergeChild([]byte(`{"join-storm":{"attempts":1}}`)); err == nil {
		t.Fatal("counts of an unselected attack merged silently")
	}
}
