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

	"github.com/openrealtime/realtime/cluster"
	"github.com/openrealtime/realtime/realtime"
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
	if o.clustered() {
		// Started first and closed last: every stack's broker uses it.
		node, err := cluster.Start(o.clusterConfig(log))
		if err != nil {
			return err
		}
		defer node.Close()
		o.cluster = node
		log = log.With("node", node.Name())
	}
	// The flag-configured project (the default project) exists when a JWT
	// secret or JWKS is given; with --projects it may be absent.
	var def *stack
	if o.JWTSecret != "" || o.JWKSFile != "" {
		var err error
		if def, err = newStack(ctx, o, stackExtras{}, log); err != nil {
			return err
		}
		if def.feed != nil {
			defer def.feed.Close()
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		realtime.PrivateMetricsCollector(),
	)
	// stackReg registers the projects' series: on a node of a cluster
	// they carry the node's name, as the cluster series do (docs/cluster.md
	// "Metrics").
	var stackReg prometheus.Registerer = reg
	if o.cluster != nil {
		reg.MustRegister(clusterCollectors(o.cluster)...)
		stackReg = prometheus.WrapRegistererWith(prometheus.Labels{"node": o.cluster.Name()}, reg)
	}
	var handler http.Handler
	maxConns := 0
	if def != nil {
		// With --projects every stack's series carry a project label, the
		// default project's too (docs/projects.md "Metrics").
		defReg := stackReg
		if o.ProjectsFile != "" {
			defReg = prometheus.WrapRegistererWith(prometheus.Labels{"project": o.ProjectRef}, stackReg)
		}
		defReg.MustRegister(stackCollectors(def)...)
		handler, maxConns = def.srv.Handler(), def.rcfg.MaxConnections
	}
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)})
	if def != nil {
		// Drop counters tell what other subscribers were (not) sent: on the
		// public address they need the admin token (docs/operations.md).
		def.srv.Handle("GET /metrics", def.insp.Protect(metricsHandler))
		if h.routes != nil {
			h.routes(def.srv)
		}
	}
	if o.MetricsAddr != "" {
		if err := startMetrics(o.MetricsAddr, metricsHandler, log); err != nil {
			return err
		}
	}
	var projs *projectSet
	if o.ProjectsFile != "" {
		var err error
		if projs, err = startProjects(ctx, o, def, projectMetrics{reg: stackReg, log: log}, log); err != nil {
			return err
		}
		handler = projs.handler
		maxConns = max(maxConns, connectionCap(o.MaxConnections, log))
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
	ln := realtime.GuardListener(rawLn, maxConns+listenerHeadroom(maxConns), log)
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	if def != nil {
		hs.RegisterOnShutdown(def.insp.Close) // live tails must not hold up Shutdown
		go func() { errc <- hs.Serve(ln) }()
		// Ready once changes are captured: a row committed after /healthz
		// says 200 is never missed because the slot did not exist yet. A
		// cluster node with the change hand-off listens without waiting:
		// its stream may need the other nodes to start first
		// (docs/cluster.md "Change hand-off").
		if o.handoff() {
			go func() {
				waitStreaming(ctx, def, log)
				def.srv.SetReady(true)
			}()
		} else {
			waitStreaming(ctx, def, log)
			def.srv.SetReady(true)
		}
	} else {
		go func() { errc <- hs.Serve(ln) }()
	}
	log.Info("realtime listening", "addr", ln.Addr().String(), "version", version, "db", o.DBURL != "", "projects", o.ProjectsFile != "")
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
	if projs != nil {
		projs.close(sctx)
	}
	if def != nil {
		if err := def.srv.Shutdown(sctx); err != nil {
			log.Warn("closing connections", "err", err)
		}
	}
	if err := <-herr; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("http shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}
