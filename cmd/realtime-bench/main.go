// Command realtime-bench is a load generator for the realtime service. It
// speaks the Phoenix protocol of supabase-js (vsn 2.0.0) and the service's
// SSE stream, opens many subscribers with distinct user tokens, generates
// broadcasts or database writes at a fixed rate for a bounded time, and
// reports throughput, latency, losses and duplicates, connect and join
// rates, and the service's memory and CPU from /proc. See docs/benchmarks.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	cfg, err := parseConfig(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "realtime-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Hard bound on the whole run: connect + hold/load + drain + slack.
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+cfg.Drain+cfg.Settle+runSlack(cfg))
	defer cancel()
	res, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "realtime-bench:", err)
		os.Exit(1)
	}
	if cfg.JSONPath == "-" {
		writeJSON(os.Stdout, res)
		return
	}
	printTable(os.Stdout, res)
	if cfg.JSONPath != "" {
		f, err := os.Create(cfg.JSONPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "realtime-bench:", err)
			os.Exit(1)
		}
		defer f.Close()
		if err := writeJSON(f, res); err != nil {
			fmt.Fprintln(os.Stderr, "realtime-bench:", err)
			os.Exit(1)
		}
	}
}
