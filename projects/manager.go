package projects

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// Manager merges the projects file with the management API's projects
// (Store) and keeps the Registry running that set. A ref in both is the
// file's: the API may not create or change it.
type Manager struct {
	reg   *Registry
	store *Store
	load  func() ([]Project, error)
	log   *slog.Logger

	mu   sync.Mutex // serializes reconciles; guards file
	file []Project  // the projects file, as last loaded
}

// NewManager returns a Manager of reg; load reads the projects file.
func NewManager(reg *Registry, store *Store, load func() ([]Project, error), log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{reg: reg, store: store, load: load, log: log}
}

// Reload re-reads the projects file and applies the merged set. A file
// that does not load changes nothing.
func (m *Manager) Reload(ctx context.Context) error {
	ps, err := m.load()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.file = ps
	return m.applyLocked(ctx)
}

// applyLocked applies file ∪ store to the registry. Caller holds mu.
func (m *Manager) applyLocked(ctx context.Context) error {
	inFile := make(map[string]bool, len(m.file))
	all := append([]Project(nil), m.file...)
	for _, p := range m.file {
		inFile[p.Ref] = true
	}
	for _, r := range m.store.All() {
		if inFile[r.Project.Ref] {
			m.log.Warn("project in both the projects file and the API state: the file's is used", "project", r.Project.Ref)
			continue
		}
		all = append(all, r.Project)
	}
	return m.reg.Apply(ctx, all)
}

// fileManaged reports whether ref comes from the projects file.
func (m *Manager) fileManaged(ref string) bool {
	for _, p := range m.file {
		if p.Ref == ref {
			return true
		}
	}
	return false
}

// errFileManaged refuses API changes to a project of the projects file.
var errFileManaged = FieldErrors{"external_id": {"is managed by the projects file"}}

// upsert stores r and applies the new set; created says r is new.
func (m *Manager) upsert(ctx context.Context, r Record) (created bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fileManaged(r.Project.Ref) || (m.reg.cfg.Default != nil && r.Project.Ref == m.reg.cfg.DefaultRef) {
		return false, errFileManaged
	}
	_, existed := m.store.Get(r.Project.Ref)
	if err := m.store.Put(r); err != nil {
		return false, err
	}
	if err := m.applyLocked(ctx); err != nil {
		m.log.Error("project did not start", "project", r.Project.Ref, "err", err)
	}
	return !existed, nil
}

// remove deletes ref's API record and applies the new set.
func (m *Manager) remove(ctx context.Context, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fileManaged(ref) {
		return errFileManaged
	}
	if _, err := m.store.Delete(ref); err != nil {
		return err
	}
	if err := m.applyLocked(ctx); err != nil {
		m.log.Error("projects did not start", "err", err)
	}
	return nil
}

// lookup returns the running record of ref: the file's project or the
// API's record.
func (m *Manager) lookup(ref string) (Record, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.file {
		if p.Ref == ref {
			return Record{Project: p}, true
		}
	}
	return m.store.Get(ref)
}

// list returns every project's record, file first.
func (m *Manager) list() []Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Record, 0, len(m.file))
	for _, p := range m.file {
		out = append(out, Record{Project: p})
	}
	for _, r := range m.store.All() {
		if !m.fileManaged(r.Project.Ref) {
			out = append(out, r)
		}
	}
	return out
}

// restart restarts ref's stack (its clients reconnect).
func (m *Manager) restart(ctx context.Context, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.reg.restart(ctx, ref) {
		return fmt.Errorf("project %s: %w", ref, errNotFound)
	}
	return nil
}
