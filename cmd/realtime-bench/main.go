package main

import (
	"context"
	"fmt"
	"log/slog"
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
	level := slog.LevelInfo
	if cfg.Quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	res, err := run(ctx, cfg, log)
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
