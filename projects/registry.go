package projects

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
)

// Stack is one project's running service: its own change source, RLS
// checker, channels, resume window and limits.
type Stack interface {
	// Handler serves the project's endpoints (WebSocket, SSE, REST, /healthz).
	Handler() http.Handler
	// Close disconnects every client and stops the change source; removed
	// says the project is gone for good (its replication slot is dropped).
	Close(ctx context.Context, removed bool)
}

// Starter builds and starts a project's stack.
type Starter func(ctx context.Context, p Project) (Stack, error)

// Config configures a Registry.
type Config struct {
	// Start builds a project's stack. Required.
	Start Starter
	// Default serves requests that name no project (the flag-configured
	// project); nil answers them as an unknown project.
	Default http.Handler
	// DefaultRef is the ref that also names the default project.
	DefaultRef string
	// Logger receives lifecycle logs; nil discards them.
	Logger *slog.Logger
}

// state is what an entry can serve.
type state int

const (
	stateRunning    state = iota
	stateSuspended        // configured with suspend: 403
	stateRestarting       // its stack is being replaced: 503
	stateFailed           // its stack did not start: 503 until the next Apply
)

// entry is a published project; never modified once in the table.
type entry struct {
	p     Project
	stack Stack
	state state
}

// Registry runs the configured projects and routes each request to its
// project's stack. It is safe for concurrent use.
type Registry struct {
	cfg Config
	log *slog.Logger

	applyMu sync.Mutex // serializes Apply and Close, the only writers of table
	// table maps ref to entry; replaced whole (copy on write) under applyMu,
	// read lock-free by ServeHTTP.
	table atomic.Pointer[map[string]*entry]
}

// New returns an empty Registry.
func New(cfg Config) *Registry {
	if cfg.Start == nil {
		panic("projects: Config.Start is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Registry{cfg: cfg, log: cfg.Logger}
	r.table.Store(&map[string]*entry{})
	return r
}

// set publishes e under ref (nil removes it). Caller holds applyMu.
func (r *Registry) set(ref string, e *entry) {
	old := *r.table.Load()
	next := make(map[string]*entry, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	if e == nil {
		delete(next, ref)
	} else {
		next[ref] = e
	}
	r.table.Store(&next)
}

// Apply makes the running projects those of ps: a new project starts, a
// removed one closes its clients and drops its slot, a changed one is
// restarted (its clients are disconnected and reconnect to the new
// configuration), an unchanged one is left alone. A project that fails to
// start answers 503 until the next Apply; its error is returned.
func (r *Registry) Apply(ctx context.Context, ps []Project) error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	want := make(map[string]bool, len(ps))
	for _, p := range ps {
		if r.cfg.Default != nil && p.Ref == r.cfg.DefaultRef {
			return fmt.Errorf("projects: ref %q is the flag-configured project's (--project-ref)", p.Ref)
		}
		want[p.Ref] = true
	}
	old := *r.table.Load()
	for _, ref := range sortedRefs(old) {
		if !want[ref] {
			r.set(ref, nil)
			if e := old[ref]; e.stack != nil {
				e.stack.Close(ctx, true)
			}
			r.log.Info("project removed", "project", ref)
		}
	}
	var errs []error
	for _, p := range ps {
		e := old[p.Ref]
		if e != nil && e.state != stateFailed && reflect.DeepEqual(e.p, p) {
			continue
		}
		if lu, ok := liveUpdater(e); ok && onlyLimitsDiffer(e.p, p) {
			lu.UpdateLimits(p)
			r.set(p.Ref, &entry{p: p, stack: e.stack, state: stateRunning})
			r.log.Info("project limits changed live", "project", p.Ref)
			continue
		}
		if e != nil && e.stack != nil {
			r.set(p.Ref, &entry{p: e.p, state: stateRestarting})
			e.stack.Close(ctx, false)
		}
		next := &entry{p: p, state: stateSuspended}
		if !p.Suspend {
			st, err := r.cfg.Start(ctx, p)
			if err != nil {
				errs = append(errs, fmt.Errorf("project %s: %w", p.Ref, err))
				next.state = stateFailed
			} else {
				next.stack, next.state = st, stateRunning
			}
		}
		r.set(p.Ref, next)
		r.log.Info("project configured", "project", p.Ref, "source", p.Source, "database", p.DBURL != "",
			"suspended", p.Suspend, "private_only", p.PrivateOnly, "replaced", e != nil, "started", next.state == stateRunning)
	}
	return errors.Join(errs...)
}

// LimitsUpdater is a Stack whose limits can change while it runs.
type LimitsUpdater interface {
	// UpdateLimits applies p's Limits to the running stack; its clients
	// stay connected.
	UpdateLimits(p Project)
}

// liveUpdater returns e's stack as a LimitsUpdater when e is running one.
func liveUpdater(e *entry) (LimitsUpdater, bool) {
	if e == nil || e.state != stateRunning {
		return nil, false
	}
	lu, ok := e.stack.(LimitsUpdater)
	return lu, ok
}

// onlyLimitsDiffer reports whether a and b differ in their Limits only:
// such a change applies live; any other (secret, JWKS, private_only,
// suspend, database) restarts the project (docs/projects.md "Reload").
func onlyLimitsDiffer(a, b Project) bool {
	a.Limits, b.Limits = Limits{}, Limits{}
	return reflect.DeepEqual(a, b)
}

// Close stops every project's stack (the service is shutting down).
func (r *Registry) Close(ctx context.Context) {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	old := *r.table.Load()
	r.table.Store(&map[string]*entry{})
	var wg sync.WaitGroup
	for _, e := range old {
		if e.stack != nil {
			wg.Add(1)
			go func() { defer wg.Done(); e.stack.Close(ctx, false) }()
		}
	}
	wg.Wait()
}

// Refs returns the configured project refs, sorted.
func (r *Registry) Refs() []string { return sortedRefs(*r.table.Load()) }

func sortedRefs(m map[string]*entry) []string {
	refs := make([]string, 0, len(m))
	for k := range m {
		refs = append(refs, k)
	}
	sort.Strings(refs)
	return refs
}

// ServeHTTP routes a request to its project (Resolve): the default
// project when it names none, else the named project's stack; an unknown
// project is refused (docs/projects.md "Routing").
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ref, named := Resolve(req)
	if !named || (r.cfg.Default != nil && ref == r.cfg.DefaultRef) {
		if r.cfg.Default != nil {
			r.cfg.Default.ServeHTTP(w, req)
			return
		}
		refuse(w, req, http.StatusNotFound, msgTenantNotFound)
		return
	}
	e := (*r.table.Load())[ref]
	switch {
	case e == nil:
		refuse(w, req, http.StatusNotFound, msgTenantNotFound)
	case e.state == stateRunning:
		e.stack.Handler().ServeHTTP(w, req)
	case e.state == stateSuspended:
		refuse(w, req, http.StatusForbidden, msgSuspended)
	default:
		w.Header().Set("Retry-After", "1")
		refuse(w, req, http.StatusServiceUnavailable, msgRestarting)
	}
}

// errNotFound is an unknown project.
var errNotFound = errors.New("not found")

// restart closes ref's stack and starts a new one from the same record;
// it reports whether ref is configured.
func (r *Registry) restart(ctx context.Context, ref string) bool {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	e := (*r.table.Load())[ref]
	if e == nil {
		return false
	}
	if e.stack != nil {
		r.set(ref, &entry{p: e.p, state: stateRestarting})
		e.stack.Close(ctx, false)
	}
	next := &entry{p: e.p, state: stateSuspended}
	if !e.p.Suspend {
		if st, err := r.cfg.Start(ctx, e.p); err != nil {
			r.log.Error("project did not restart", "project", ref, "err", err)
			next.state = stateFailed
		} else {
			next.stack, next.state = st, stateRunning
		}
	}
	r.set(ref, next)
	return true
}

// Health is what a stack reports about itself (the management API's
// health endpoint); stacks implementing HealthReporter provide it.
type Health struct {
	// Streaming says the change source streams (false without a database).
	Streaming bool
}

// HealthReporter is a Stack that reports its Health.
type HealthReporter interface {
	Health() Health
}

// health returns ref's state and its stack's health.
func (r *Registry) health(ref string) (running bool, h Health, ok bool) {
	e := (*r.table.Load())[ref]
	if e == nil {
		return false, Health{}, false
	}
	if hr, isHR := e.stack.(HealthReporter); isHR && e.state == stateRunning {
		h = hr.Health()
	}
	return e.state == stateRunning, h, true
}
