package channels

import (
	"slices"
	"strconv"
	"strings"
	"sync"
)

// pgState is a subscription's active postgres_changes bindings.
type pgState struct {
	bindings []*Binding       // as requested
	active   []*activeBinding // validated, one or more per binding
}

// pgIndex finds the subscriber classes whose bindings may match a change: schema →
// table → classes, with "*" buckets at both levels, so a change reads at
// most four buckets however many bindings exist.
type pgIndex struct {
	mu      sync.RWMutex // guards byTable, classes and every Subscription.class
	byTable map[string]map[string]map[*subscriberClass]struct{}
	classes map[string]*subscriberClass
}

func newPGIndex() *pgIndex {
	return &pgIndex{byTable: make(map[string]map[string]map[*subscriberClass]struct{}), classes: make(map[string]*subscriberClass)}
}

// setPG replaces sub's bindings (nil removes them) and re-indexes it.
func (h *Hub) setPG(s *Subscription, st *pgState) {
	old := s.pg.Swap(st)
	if old != nil {
		h.pg.remove(s)
	}
	if st != nil {
		h.pg.add(s, st)
	}
}

// classKey identifies identity plus bindings: binding ids are hashes of the
// request, and compiling them depends only on the role, which is part of
// the identity.
func classKey(id *Identity, st *pgState) string {
	parts := make([]string, 0, len(st.active))
	for _, b := range st.active {
		parts = append(parts, strconv.FormatInt(b.id, 10)+"@"+b.schema+"."+b.table)
	}
	slices.Sort(parts)
	return id.Key + "\x00" + strings.Join(parts, ",")
}

func (ix *pgIndex) add(s *Subscription, st *pgState) {
	id := s.Identity()
	if id == nil {
		return
	}
	key := classKey(id, st)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	c := ix.classes[key]
	if c == nil {
		c = &subscriberClass{key: key, id: id, active: st.active}
		empty := []*Subscription{}
		c.members.Store(&empty)
		ix.classes[key] = c
		for _, b := range st.active {
			tables := ix.byTable[b.schema]
			if tables == nil {
				tables = make(map[string]map[*subscriberClass]struct{})
				ix.byTable[b.schema] = tables
			}
			classes := tables[b.table]
			if classes == nil {
				classes = make(map[*subscriberClass]struct{})
				tables[b.table] = classes
			}
			classes[c] = struct{}{}
		}
	}
	old := *c.members.Load()
	next := make([]*Subscription, len(old), len(old)+1)
	copy(next, old)
	next = append(next, s)
	c.members.Store(&next)
	s.class = c
	for r := range s.classBase {
		s.classBase[r] = c.drops[r].Load()
	}
}

// remove takes s out of its class, folding the class's drops since s
// joined into s's own counters; an empty class leaves the index.
func (ix *pgIndex) remove(s *Subscription) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	c := s.class
	if c == nil {
		return
	}
	for r := range s.classBase {
		s.drops[r].Add(c.drops[r].Load() - s.classBase[r])
	}
	s.class = nil
	old := *c.members.Load()
	next := make([]*Subscription, 0, len(old))
	for _, m := range old {
		if m != s {
			next = append(next, m)
		}
	}
	c.members.Store(&next)
	if len(next) > 0 {
		return
	}
	delete(ix.classes, c.key)
	for _, b := range c.active {
		tables := ix.byTable[b.schema]
		if tables == nil {
			continue
		}
		delete(tables[b.table], c)
		if len(tables[b.table]) == 0 {
			delete(tables, b.table)
		}
		if len(tables) == 0 {
			delete(ix.byTable, b.schema)
		}
	}
}

// classDrops returns the drops s's class counted since s joined it.
func (ix *pgIndex) classDrops(s *Subscription, r DropReason) int64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if s.class == nil {
		return 0
	}
	return s.class.drops[r].Load() - s.classBase[r]
}

// candidates appends to dst each class with a binding on schema.table
// (exact or wildcard), once each.
func (ix *pgIndex) candidates(schema, table string, dst []*subscriberClass) []*subscriberClass {
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
			classes := tables[tb]
			if len(classes) == 0 {
				continue
			}
			buckets++
			for c := range classes {
				if buckets > 1 && slices.Contains(dst[start:], c) {
					continue
				}
				dst = append(dst, c)
			}
		}
	}
	return dst
}

// all calls fn for every subscription with bindings, once each.
func (ix *pgIndex) all(fn func(*Subscription)) {
	ix.mu.RLock()
	var subs []*Subscription
	for _, c := range ix.classes {
		subs = append(subs, *c.members.Load()...)
	}
	ix.mu.RUnlock()
	for _, s := range subs {
		fn(s)
	}
}
