package main

import (
	"context"
	"encoding/json"
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
	if cfg.CPUProfile != "" {
		stopProfile, err := startCPUProfile(cfg.CPUProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "realtime-bench:", err)
			os.Exit(2)
		}
		defer stopProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Hard bound on the whole run: connect + hold/load + drain + slack.
	bound := cfg.Duration + cfg.Drain + cfg.Settle + runSlack(cfg)
	if cfg.Load == loadSoak {
		bound = soakBound(cfg)
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	level := slog.LevelInfo
	if cfg.Quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if cfg.Load == loadSoak && cfg.Soak.Child > 0 {
		if err := runAttackChild(ctx, cfg, log, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "realtime-bench:", err)
			os.Exit(1)
		}
		return
	}
	if cfg.Load == loadSoak {
		res, err := runSoak(ctx, cfg, log)
		if err != nil {
			fmt.Fprintln(os.Stderr, "realtime-bench:", err)
			os.Exit(1)
		}
		printSoak(os.Stdout, res)
		if cfg.JSONPath != "" {
			if err := writeJSONFile(cfg.JSONPath, res); err != nil {
				fmt.Fprintln(os.Stderr, "realtime-bench:", err)
				os.Exit(1)
			}
		}
		return
	}
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

// writeJSONFile writes v as indented JSON to path (- for stdout).
func writeJSONFile(path string, v any) error {
	out := os.Stdout
	if path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
