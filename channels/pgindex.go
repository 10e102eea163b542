package channels

import "sync"

// pgState is a subscription's postgres_changes bindings.
type pgState struct {
	bindings []*Binding
}

// pgIndex finds the subscriptions whose bindings may match a change:
// schema → table → subscriptions, with "*" buckets at both levels.
type pgIndex struct {
	mu      sync.RWMutex // guards byTable
	byTable map[string]map[string]map[*Subscription]struct{}
}

func newPGIndex() *pgIndex {
	return &pgIndex{byTable: make(map[string]map[string]map[*Subscription]struct{})}
}

func (ix *pgIndex) add(s *Subscription, st *pgState) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, b := range st.bindings {
		tables := ix.byTable[b.Schema]
		if tables == nil {
			tables = make(map[string]map[*Subscription]struct{})
			ix.byTable[b.Schema] = tables
		}
		subs := tables[b.Table]
		if subs == nil {
			subs = make(map[*Subscription]struct{})
			tables[b.Table] = subs
		}
		subs[s] = struct{}{}
	}
}

func (ix *pgIndex) remove(s *Subscription, st *pgState) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, b := range st.bindings {
		tables := ix.byTable[b.Schema]
		if tables == nil {
			continue
		}
		subs := tables[b.Table]
		delete(subs, s)
		if len(subs) == 0 {
			delete(tables, b.Table)
		}
		if len(tables) == 0 {
			delete(ix.byTable, b.Schema)
		}
	}
}

// candidates calls fn for each subscription with a binding on schema.table
// (exact or wildcard). A subscription may be visited more than once.
func (ix *pgIndex) candidates(schema, table string, fn func(*Subscription)) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	for _, sc := range [2]string{schema, "*"} {
		tables := ix.byTable[sc]
		if tables == nil {
			continue
		}
		for _, tb := range [2]string{table, "*"} {
			for s := range tables[tb] {
				fn(s)
			}
		}
	}
}
