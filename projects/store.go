package projects

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Record is a project made through the management API, as the state file
// keeps it: the project, the extension settings it was given (returned
// without db_password) and its timestamps.
type Record struct {
	Project    Project        `json:"project"`
	Settings   map[string]any `json:"settings,omitempty"`
	InsertedAt time.Time      `json:"inserted_at"`
	UpdatedAt  time.Time      `json:"updated_at"`
}

// Store keeps the management API's projects in a JSON file, rewritten
// atomically (temporary file, fsync, rename) on every change. The file
// holds secrets: it is created mode 0600.
type Store struct {
	path string
	mu   sync.Mutex         // guards recs and the file
	recs map[string]*Record // by ref
}

// stateFile is the state file's document.
type stateFile struct {
	Projects []*Record `json:"projects"`
}

// OpenStore reads the state file at path; a missing file is an empty store.
func OpenStore(path string) (*Store, error) {
	s := &Store{path: path, recs: map[string]*Record{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read projects state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("parse projects state %s: %w", path, err)
	}
	for _, r := range f.Projects {
		s.recs[r.Project.Ref] = r
	}
	return s, nil
}

// Get returns a copy of ref's record.
func (s *Store) Get(ref string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[ref]
	if !ok {
		return Record{}, false
	}
	return *r, true
}

// All returns copies of every record, sorted by ref.
func (s *Store) All() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.recs))
	for _, r := range s.recs {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Project.Ref < out[j].Project.Ref })
	return out
}

// Put stores r (replacing the record of its ref) and writes the file.
func (s *Store) Put(r Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.recs[r.Project.Ref]
	s.recs[r.Project.Ref] = &r
	if err := s.writeLocked(); err != nil {
		if old == nil {
			delete(s.recs, r.Project.Ref)
		} else {
			s.recs[r.Project.Ref] = old
		}
		return err
	}
	return nil
}

// Delete removes ref's record and writes the file; it reports whether
// there was one.
func (s *Store) Delete(ref string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.recs[ref]
	if !ok {
		return false, nil
	}
	delete(s.recs, ref)
	if err := s.writeLocked(); err != nil {
		s.recs[ref] = old
		return false, err
	}
	return true, nil
}

// writeLocked writes the state file atomically. Caller holds mu.
func (s *Store) writeLocked() error {
	f := stateFile{Projects: make([]*Record, 0, len(s.recs))}
	for _, r := range s.recs {
		f.Projects = append(f.Projects, r)
	}
	sort.Slice(f.Projects, func(i, j int) bool { return f.Projects[i].Project.Ref < f.Projects[j].Project.Ref })
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode projects state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".projects-state-*")
	if err != nil {
		return fmt.Errorf("write projects state: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write projects state: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("write projects state: %w", err)
	}
	return nil
}
