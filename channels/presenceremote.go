package channels

import (
	"bytes"
	"encoding/json"
)

// remoteMeta is a presence tracked on another node, as that node encoded
// it (a meta object with phx_ref).
type remoteMeta struct {
	key string
	ref string
	obj []byte
}

// remoteState is the presence other nodes hold on one topic of this node,
// kept while the topic has local subscribers (docs/cluster.md "Presence").
// Guarded by its topic's mu.
type remoteState struct {
	origins map[string]map[string]*remoteMeta // origin → ref → meta
	// left are refs that left before this node's snapshot of the topic
	// completed, so that a late snapshot cannot bring them back; nil once
	// synced.
	left   map[string]struct{}
	synced bool
}

// diffEntries is a decoded presence diff: metas by key, raw.
type diffEntries map[string]struct {
	Metas []json.RawMessage `json:"metas"`
}

// applyRemoteLocked records a diff from origin and returns the part of it
// that changed this node's view (joins not yet known, leaves of known
// metas), encoded for local subscribers, or nil when nothing changed.
// t.mu must be held.
func (t *topic) applyRemoteLocked(origin string, diff []byte) []byte {
	var d struct {
		Joins  diffEntries `json:"joins"`
		Leaves diffEntries `json:"leaves"`
	}
	if json.Unmarshal(diff, &d) != nil {
		return nil
	}
	if t.remote == nil {
		t.remote = &remoteState{origins: make(map[string]map[string]*remoteMeta)}
	}
	r := t.remote
	metas := r.origins[origin]
	if metas == nil {
		metas = make(map[string]*remoteMeta)
		r.origins[origin] = metas
	}
	var joins, leaves []*remoteMeta
	for _, e := range d.Leaves {
		for _, raw := range e.Metas {
			ref := metaRef(raw)
			if m := metas[ref]; m != nil {
				delete(metas, ref)
				leaves = append(leaves, m)
				continue
			}
			if !r.synced {
				if r.left == nil {
					r.left = make(map[string]struct{})
				}
				r.left[ref] = struct{}{}
			}
		}
	}
	for key, e := range d.Joins {
		for _, raw := range e.Metas {
			ref := metaRef(raw)
			if ref == "" || metas[ref] != nil {
				continue
			}
			if _, gone := r.left[ref]; gone {
				continue
			}
			m := &remoteMeta{key: key, ref: ref, obj: stateMeta(raw)}
			metas[ref] = m
			joins = append(joins, m)
		}
	}
	if len(metas) == 0 {
		delete(r.origins, origin)
	}
	if len(joins) == 0 && len(leaves) == 0 {
		return nil
	}
	return encodeRemoteDiff(joins, leaves)
}

// resetRemoteLocked forgets origin's presence on t and returns the leaves
// for local subscribers, or nil. t.mu must be held.
func (t *topic) resetRemoteLocked(origin string) []byte {
	if t.remote == nil {
		return nil
	}
	metas := t.remote.origins[origin]
	delete(t.remote.origins, origin)
	if len(metas) == 0 {
		return nil
	}
	leaves := make([]*remoteMeta, 0, len(metas))
	for _, m := range metas {
		leaves = append(leaves, m)
	}
	return encodeRemoteDiff(nil, leaves)
}

// syncedLocked marks t's snapshot complete (synced) or begun again (!synced).
// t.mu must be held.
func (t *topic) syncedLocked(synced bool) {
	if t.remote == nil {
		t.remote = &remoteState{origins: make(map[string]map[string]*remoteMeta)}
	}
	t.remote.synced = synced
	if synced {
		t.remote.left = nil
	}
}

// stateMeta is a copy of a diff's meta object fit for presence_state:
// without phx_ref_prev, which only diffs carry.
func stateMeta(raw []byte) []byte {
	if !bytes.Contains(raw, []byte(`"phx_ref_prev"`)) {
		return append([]byte(nil), raw...)
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return append([]byte(nil), raw...)
	}
	delete(obj, "phx_ref_prev")
	out, _ := json.Marshal(obj)
	return out
}

// metaRef returns the phx_ref of a meta object ("" when it has none).
func metaRef(raw []byte) string {
	var m struct {
		Ref string `json:"phx_ref"`
	}
	json.Unmarshal(raw, &m)
	return m.Ref
}

// encodeRemoteDiff builds {"joins":{...},"leaves":{...}} from remote metas.
func encodeRemoteDiff(joins, leaves []*remoteMeta) []byte {
	buf := []byte(`{"joins":`)
	buf = appendRemoteGroup(buf, joins)
	buf = append(buf, `,"leaves":`...)
	buf = appendRemoteGroup(buf, leaves)
	return append(buf, '}')
}

// appendRemoteGroup appends {key: {"metas": [...]}} for ms.
func appendRemoteGroup(buf []byte, ms []*remoteMeta) []byte {
	byKey := make(map[string][]*remoteMeta)
	var order []string
	for _, m := range ms {
		if _, ok := byKey[m.key]; !ok {
			order = append(order, m.key)
		}
		byKey[m.key] = append(byKey[m.key], m)
	}
	buf = append(buf, '{')
	for i, key := range order {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendJSONString(buf, key)
		buf = append(buf, `:{"metas":[`...)
		for j, m := range byKey[key] {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, m.obj...)
		}
		buf = append(buf, "]}"...)
	}
	return append(buf, '}')
}

// LocalPresence returns this node's presence on the topic key as a diff
// with every meta in joins, or nil when there is none: another node's
// snapshot of the topic (docs/cluster.md "Presence"). Safe for concurrent
// use.
func (h *Hub) LocalPresence(key string) []byte {
	t := h.lookup(key)
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.presence) == 0 {
		return nil
	}
	buf := []byte(`{"joins":{`)
	first := true
	for key, metas := range t.presence {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendJSONString(buf, key)
		buf = append(buf, `:{"metas":[`...)
		for i, m := range metas {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendMeta(buf, m, "")
		}
		buf = append(buf, "]}"...)
	}
	return append(buf, `},"leaves":{}}`...)
}
