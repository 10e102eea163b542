package channels

import "sync"

// pgState is a subscription's active postgres_changes bindings.
type pgState struct {
	bindings []*Binding       // as requested
	active   []*activeBinding // validated, one or more per binding
}

// pgIndex finds the subscriptions whose bindings may match a change:
// schema → table → subscriptions, with "*" buckets at both levels, so a
// change reads at most four buckets however many bindings exist.
type pgIndex struct {
	mu      sync.RWMutex // guards byTable
	byTable map[string]map[string]map[*Subscription]struct{}
}

func newPGIndex() *pgIndex {
	return &pgIndex{byTable: make(map[string]map[string]map[*Subscription]struct{})}
}

// setPG replaces sub's bindings (nil removes them) and re-indexes it.
// It only indexes subscriptions currently subscribed to the hub.
func (h *Hub) setPG(s *Subscription, st *pgState) {
	old := s.pg.Swap(st)
	if old != nil {
		h.pg.remove(s, old)
	}
	if st != nil {
		h.pg.add(s, st)
	}
}

func (ix *pgIndex) add(s *Subscription, st *pgState) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, b := range st.active {
		tables := ix.byTable[b.schema]
		if tables == nil {
			tables = make(map[string]map[*Subscription]struct{})
			ix.byTable[b.schema] = tables
		}
		subs := tables[b.table]
		if subs == nil {
			subs = make(map[*Subscription]struct{})
			tables[b.table] = subs
		}
		subs[s] = struct{}{}
	}
}

func (ix *pgIndex) remove(s *Subscription, st *pgState) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, b := range st.active {
		tables := ix.byTable[b.schema]
		if tables == nil {
			continue
		}
		subs := tables[b.table]
		delete(subs, s)
		if len(subs) == 0 {
			delete(tables, b.table)
		}
		if len(tables) == 0 {
			delete(ix.byTable, b.schema)
		}
	}
}

// candidates appends to dst each subscription with a binding on
// schema.table (exact or wildcard), once each.
func (ix *pgIndex) candidates(schema, table string, dst []*Subscription) []*Subscription {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	start := len(dst)
	buckets := 0
	for _, sc := range [2]string{schema, "*"} {
		tables := ix.byTable[sc]
		if tables == nil {
			continue
		}
		for _, tb := range [2]string{table, "*"} {
			subs := tables[tb]
			if len(subs) == 0 {
				continue
			}
			buckets++
			for s := range subs {
				if buckets > 1 && contains(dst[start:], s) {
					continue
				}
				dst = append(dst, s)
			}
		}
	}
	return dst
}

func contains(list []*Subscription, s *Subscription) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// all calls fn for every subscription with bindings, once each.
func (ix *pgIndex) all(fn func(*Subscription)) {
	seen := make(map[*Subscription]bool)
	ix.mu.RLock()
	for _, tables := range ix.byTable {
		for _, subs := range tables {
			for s := range subs {
				seen[s] = true
			}
		}
	}
	ix.mu.RUnlock()
	for s := range seen {
		fn(s)
	}
}
