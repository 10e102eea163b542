package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/realtime"
	"github.com/openrealtime/realtime/realtime/admin"
)

func runServe(args []string) error {
	var o options
	fs := flag.NewFlagSet("realtime serve", flag.ContinueOnError)
	o.register(fs, "127.0.0.1:4000")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, &o, hooks{})
}

// newLogger builds the process logger from the options.
func newLogger(o *options) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	hopts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(o.LogFormat, "json") {
		return slog.New(slog.NewJSONHandler(os.Stderr, hopts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, hopts))
}

// hooks lets the dev command extend serve.
type hooks struct {
	// routes adds handlers before serving.
	routes func(s *realtime.Server)
	// listening receives the bound address once serving.
	listening func(addr string)
}

// serve runs the service until ctx ends, then shuts down in order: stop
// accepting, close every client, stop the change source, wait.
func serve(ctx context.Context, o *options, h hooks) error {
	log := newLogger(o)
	vcfg := auth.Config{Secret: []byte(o.JWTSecret)}
	if o.JWKSFile != "" {
		data, err := os.ReadFile(o.JWKSFile)
		if err != nil {
			return fmt.Errorf("read JWKS file: %w", err)
		}
		vcfg.JWKS = data
	}
	verifier, err := auth.NewVerifier(vcfg)
	if err != nil {
		return err
	}
	hub := channels.NewHub(channels.HubConfig{Logger: log})
	rcfg := realtime.Config{
		Verifier:             verifier,
		Hub:                  hub,
		Logger:               log,
		MaxChannelsPerClient: o.MaxChannelsPerClient,
		MaxPayloadBytes:      o.MaxPayloadBytes,
		MaxJoinsPerSecond:    o.MaxJoinsPerSecond,
		MaxQueueBytes:        o.MaxQueueBytes,
		IdleTimeout:          o.IdleTimeout,
		WriteTimeout:         o.WriteTimeout,
		SSEHeartbeat:         o.SSEHeartbeat,
		MaxConnections:       connectionCap(o.MaxConnections, log),
		MaxConnectionsPerIP:  o.MaxConnectionsPerIP,
		MaxResumesPerUser:    o.MaxResumesPerUser,
	}
	insp := admin.New(admin.Config{Hub: hub, Verifier: verifier, Token: o.AdminToken, Logger: log, MaxBroadcastBytes: o.MaxPayloadBytes})
	feed, err := startFeed(ctx, o, log, hub, verifier, insp.ObserveDelivery)
	if err != nil {
		return err
	}
	if feed != nil {
		rcfg.Changes = feed
		rcfg.ReplicationReady = func() <-chan struct{} { return feed.streaming }
		if feed.prober != nil {
			rcfg.Private = feed.prober
		}
		insp.SetSource(feed.source.Status)
		insp.SetRLS(rlsStatsOf(feed.Checker, o.RLSVerify))
		defer feed.Close()
	}
	srv := realtime.New(rcfg)
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		srv.MetricsCollector(),
		insp.Collector(),
		realtime.PrivateMetricsCollector(),
	)
	if feed != nil && feed.dbb != nil {
		reg.MustRegister(dbBroadcastCollector{feed.dbb})
	}
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)})
	// Drop counters tell what other subscribers were (not) sent: on the
	// public address they need the admin token (docs/operations.md).
	srv.Handle("GET /metrics", insp.Protect(metricsHandler))
	if o.MetricsAddr != "" {
		if err := startMetrics(o.MetricsAddr, metricsHandler, log); err != nil {
			return err
		}
	}
	srv.Handle("/admin/", insp.Handler())
	if feed != nil && feed.bridge != nil {
		feed.bridge.Mount(srv.Handle)
	}
	if h.routes != nil {
		h.routes(srv)
	}

	if o.PprofAddr != "" {
		if err := startPprof(o.PprofAddr, log); err != nil {
			return err
		}
	}
	rawLn, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.Addr, err)
	}
	// Sockets that never become a connection (idle, or refused by a cap)
	// still hold descriptors: the listener sheds past a headroom above
	// the connection cap, and backs off when descriptors run out.
	ln := realtime.GuardListener(rawLn, rcfg.MaxConnections+listenerHeadroom(rcfg.MaxConnections), log)
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	hs.RegisterOnShutdown(insp.Close) // live tails must not hold up Shutdown
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if feed != nil {
		// Ready once changes are captured: a row committed after /healthz
		// says 200 is never missed because the slot did not exist yet.
		select {
		case <-feed.streaming:
		case <-time.After(30 * time.Second):
			log.Warn("change source not streaming after 30s; serving anyway")
		case <-ctx.Done():
		}
	}
	srv.SetReady(true)
	log.Info("realtime listening", "addr", ln.Addr().String(), "version", version, "db", o.DBURL != "")
	if h.listening != nil {
		h.listening(ln.Addr().String())
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	herr := make(chan error, 1)
	go func() { herr <- hs.Shutdown(sctx) }()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("closing connections", "err", err)
	}
	if err := <-herr; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("http shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}
