package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openrealtime/realtime/projects"
	"github.com/openrealtime/realtime/realtime"
)

// projectSet runs the projects of --projects and of the management API
// beside the flag-configured project and reloads the file on SIGHUP
// (docs/projects.md).
type projectSet struct {
	reg     *projects.Registry
	handler http.Handler  // the registry, behind the management API when enabled
	stop    func()        // stops the SIGHUP loop
	done    chan struct{} // closed when the SIGHUP loop has returned
}

// startProjects loads --projects and the API state, starts their projects
// and the reload loop. A file that does not load is an error at start; on
// reload it is logged and the running projects are kept.
func startProjects(ctx context.Context, o *options, def *stack, pm projectMetrics, log *slog.Logger) (*projectSet, error) {
	cfg := projects.Config{DefaultRef: o.ProjectRef, Logger: log, Start: projectStarter(o, pm, log)}
	if def != nil {
		cfg.Default = def.srv.Handler()
	}
	reg := projects.New(cfg)
	statePath := o.ProjectsState
	if statePath == "" {
		statePath = o.ProjectsFile + ".state.json"
	}
	store, err := projects.OpenStore(statePath)
	if err != nil {
		return nil, err
	}
	load := func() ([]projects.Project, error) {
		ps, err := projects.LoadFile(o.ProjectsFile)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if def != nil && p.Ref == o.ProjectRef {
				return nil, fmt.Errorf("projects file: ref %q names the flag-configured project (--project-ref)", p.Ref)
			}
		}
		return ps, nil
	}
	mgr := projects.NewManager(reg, store, load, log)
	if _, err := load(); err != nil {
		return nil, err
	}
	if err := mgr.Reload(ctx); err != nil {
		log.Error("some projects did not start", "err", err)
	}
	set := &projectSet{reg: reg, handler: reg, done: make(chan struct{})}
	if o.APIJWTSecret != "" || o.AdminToken != "" {
		api := projects.NewAPI(mgr, projects.APIConfig{Secret: []byte(o.APIJWTSecret), AdminToken: o.AdminToken})
		mux := http.NewServeMux()
		mux.Handle("/api/tenants", api)
		mux.Handle("/api/tenants/", api)
		if o.AdminToken != "" {
			mux.Handle("GET /admin/api/projects", projectsOverview(reg, def, o.ProjectRef, o.AdminToken))
		}
		mux.Handle("/", reg)
		set.handler = mux
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	lctx, cancel := context.WithCancel(ctx)
	set.stop = func() { signal.Stop(hup); cancel() }
	go func() {
		defer close(set.done)
		for {
			select {
			case <-lctx.Done():
				return
			case <-hup:
			}
			if err := mgr.Reload(lctx); err != nil {
				log.Error("projects file reload: running projects kept or some did not start", "err", err)
				continue
			}
			log.Info("projects file reloaded")
		}
	}()
	return set, nil
}

// close stops the reload loop, then every project's stack.
func (s *projectSet) close(ctx context.Context) {
	s.stop()
	<-s.done
	s.reg.Close(ctx)
}

// projectStarter returns the Starter that builds a project's stack from
// the service options with the project's database, keys and limits.
func projectStarter(base *options, pm projectMetrics, log *slog.Logger) projects.Starter {
	return func(ctx context.Context, p projects.Project) (projects.Stack, error) {
		o := projectOptions(base, p)
		plog := log.With("project", p.Ref)
		x := stackExtras{
			ref:                     p.Ref,
			privateOnly:             p.PrivateOnly,
			presenceLimit:           p.MaxClientPresenceEventsPerWindow,
			presenceWindow:          time.Duration(p.ClientPresenceWindowMS) * time.Millisecond,
			eventsPerSecond:         p.MaxEventsPerSecond,
			presenceEventsPerSecond: p.MaxPresenceEventsPerSecond,
			joinsPerSecond:          p.MaxJoinsPerSecond,
		}
		if p.JWTJWKS != "" {
			x.jwks = []byte(p.JWTJWKS)
		}
		// The stack outlives the Apply that started it: its goroutines end
		// at its close, not with the reload's context.
		st, err := newStack(context.WithoutCancel(ctx), o, x, plog)
		if err != nil {
			return nil, err
		}
		// The project's /healthz says 200 once its source streams; the wait
		// ends with the stack, not with the request that created it.
		go func() {
			waitStreaming(st.ctx, st, plog)
			st.srv.SetReady(true)
		}()
		return &projectStack{st: st, p: p, log: plog, timeout: base.ShutdownTimeout, unregister: pm.add(p.Ref, st)}, nil
	}
}

// projectOptions are the options of p's stack: the service's, with the
// project's database, keys and limits.
func projectOptions(base *options, p projects.Project) *options {
	o := *base
	o.JWTSecret, o.JWKSFile = p.JWTSecret, ""
	o.DBURL, o.Source, o.Slot, o.Publication = p.DBURL, p.Source, p.Slot, p.Publication
	o.PGliteBridgeSecret = ""
	o.MaxConnections = p.MaxConcurrentUsers
	o.MaxChannelsPerClient = p.MaxChannelsPerClient
	o.MaxJoinsPerSecond = float64(p.MaxJoinsPerSecond)
	o.MaxPayloadBytes = p.MaxPayloadBytes()
	return &o
}

// projectStack adapts a stack to projects.Stack.
type projectStack struct {
	st      *stack
	p       projects.Project
	log     *slog.Logger
	timeout time.Duration
	// unregister removes the stack's series from /metrics.
	unregister func()
}

// Health reports whether the project's change source streams.
func (s *projectStack) Health() projects.Health {
	if s.st.feed == nil {
		return projects.Health{}
	}
	select {
	case <-s.st.feed.streaming:
		return projects.Health{Streaming: true}
	default:
		return projects.Health{}
	}
}

// UpdateLimits applies p's limits to the running stack: open connections
// keep going under the new limits (docs/projects.md "Reload").
func (s *projectStack) UpdateLimits(p projects.Project) {
	s.st.srv.SetLimits(realtime.Limits{
		MaxConnections:             p.MaxConcurrentUsers,
		MaxChannelsPerClient:       p.MaxChannelsPerClient,
		MaxJoinsPerSecond:          float64(p.MaxJoinsPerSecond),
		MaxPayloadBytes:            p.MaxPayloadBytes(),
		PresenceLimit:              p.MaxClientPresenceEventsPerWindow,
		PresenceWindow:             time.Duration(p.ClientPresenceWindowMS) * time.Millisecond,
		MaxEventsPerSecond:         p.MaxEventsPerSecond,
		MaxPresenceEventsPerSecond: p.MaxPresenceEventsPerSecond,
		MaxProjectJoinsPerSecond:   p.MaxJoinsPerSecond,
	})
	s.p = p
}

// Handler serves the project's endpoints.
func (s *projectStack) Handler() http.Handler { return s.st.srv.Handler() }

// Close disconnects the project's clients and stops its change source; a
// removed logical project's replication slot is dropped.
func (s *projectStack) Close(ctx context.Context, removed bool) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	s.unregister()
	s.st.close(cctx, s.log)
	if removed && s.p.DBURL != "" && s.p.Source == "logical" {
		slot := effectiveSlot(s.st.opts)
		if err := dropSlot(cctx, s.p.DBURL, slot); err != nil {
			s.log.Warn("replication slot of the removed project not dropped", "slot", slot, "err", err)
		}
	}
}

// dropSlot drops a replication slot once no walsender holds it.
func dropSlot(ctx context.Context, dbURL, slot string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		var active, exists bool
		err := conn.QueryRow(ctx, `SELECT true, active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&exists, &active)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("look up slot: %w", err)
		}
		if !active {
			if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot); err != nil {
				return fmt.Errorf("drop slot: %w", err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("slot still active: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitStreaming waits until st's change source streams, 30 s at most.
func waitStreaming(ctx context.Context, st *stack, log *slog.Logger) {
	select {
	case <-st.streaming():
	case <-time.After(30 * time.Second):
		log.Warn("change source not streaming after 30s; serving anyway")
	case <-ctx.Done():
	}
}
