package channels

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/openrealtime/realtime/channels/filter"
	"github.com/openrealtime/realtime/decoder"
)

// delivery is one (change, subscription) pair that matched a binding.
type delivery struct {
	change int
	sub    *Subscription
	ids    []int64
	sel    map[string]bool // select restriction of the first matching binding with one; nil for all
}

// tableFacts are the per-batch facts about one table.
type tableFacts struct {
	info *TableInfo
	err  error
}

// groupKey identifies one RLS query: a table and an identity.
type groupKey struct {
	table string // schema.table
	id    string // Identity.Key
}

type rlsGroup struct {
	id      *Identity
	schema  string
	table   string
	changes []int // batch indices, unique, ascending
	visible map[int]bool
	err     error
}

// Process fans a batch of changes out to matching subscriptions. It is a
// decoder.Sink: it returns once every frame has been queued (queues never
// block), so the source may then confirm the batch. Database errors for one
// identity group deny that group only; Process itself fails only when ctx
// ends. The batch is also kept in the replay window for SSE resume.
func (p *PGChanges) Process(ctx context.Context, batch []decoder.Change) error {
	if len(batch) == 0 {
		return nil
	}
	cursors := cursorsOf(batch)
	p.replay.add(batch, cursors)
	type tapKey struct {
		topic  string
		change int
	}
	var taps map[tapKey]int
	tapping := p.hub.tap.Load() != nil
	perTopic := make(map[string]int64)
	cur := 0
	stats, err := p.fanOut(ctx, batch, cursors, nil, func(s *Subscription, f Frame) bool {
		if !s.deliver(f) {
			return false
		}
		perTopic[TopicKey(s.Topic, s.Private)]++
		if tapping {
			if taps == nil {
				taps = make(map[tapKey]int)
			}
			taps[tapKey{s.Topic, cur}]++
		}
		return true
	}, &cur)
	for key, n := range perTopic {
		if t := p.hub.lookup(key); t != nil {
			t.msgsOut.Add(n)
			t.touch()
		}
	}
	for k, n := range taps {
		ch := &batch[k.change]
		p.hub.emitTap(k.topic, "postgres_changes", ch.Kind.String()+" "+ch.Rel.Schema+"."+ch.Rel.Table, rowJSON(ch), n)
	}
	if err == nil && p.cfg.OnDelivery != nil {
		p.cfg.OnDelivery(stats)
	}
	return err
}

// fanOut matches, checks and encodes batch for the candidate subscriptions
// (every indexed one, or only `only`) and emits frames in batch order.
func (p *PGChanges) fanOut(ctx context.Context, batch []decoder.Change, cursors []Cursor, only *Subscription, emit func(*Subscription, Frame) bool, current *int) (DeliveryStats, error) {
	stats := DeliveryStats{Changes: len(batch), Oldest: batch[0].CommitTime}
	facts := make(map[string]*tableFacts)
	var deliveries []delivery
	var cands []*Subscription
	for ci := range batch {
		ch := &batch[ci]
		if only != nil {
			cands = append(cands[:0], only)
		} else {
			cands = p.hub.pg.candidates(ch.Rel.Schema, ch.Rel.Table, cands[:0])
		}
		if len(cands) == 0 {
			continue
		}
		row := rowView{rel: ch.Rel, vals: ch.New}
		if ch.Kind == decoder.Delete {
			row.vals = ch.Old
		}
		for _, s := range cands {
			st := s.pg.Load()
			if st == nil {
				continue
			}
			var ids []int64
			var sel map[string]bool
			filtered := false
			for _, b := range st.active {
				if b.events&(1<<ch.Kind) == 0 || !tableMatch(b, ch.Rel) {
					continue
				}
				if b.filter != nil && !b.filter.Match(row) {
					filtered = true
					continue
				}
				if !containsID(ids, b.id) {
					ids = append(ids, b.id)
				}
				if b.sel != nil && sel == nil {
					sel = b.sel
				}
			}
			if len(ids) == 0 {
				if filtered {
					s.Drop(DropFilter)
				}
				continue
			}
			deliveries = append(deliveries, delivery{change: ci, sub: s, ids: ids, sel: sel})
		}
		key := ch.Rel.Schema + "." + ch.Rel.Table
		if facts[key] == nil {
			info, err := p.cfg.Auth.Table(ctx, ch.Rel.Schema, ch.Rel.Table)
			if errors.Is(err, ErrTransient) {
				return stats, err // redeliver the batch later; nothing was sent
			}
			facts[key] = &tableFacts{info: info, err: err}
		}
	}
	if len(deliveries) == 0 {
		return stats, ctx.Err()
	}

	// Group the rows that need an RLS check by (table, identity).
	groups := make(map[groupKey]*rlsGroup)
	for _, d := range deliveries {
		ch := &batch[d.change]
		f := facts[ch.Rel.Schema+"."+ch.Rel.Table]
		if ch.Kind == decoder.Delete || f.err != nil || !f.info.RLS || len(f.info.PrimaryKey) == 0 {
			continue
		}
		id := d.sub.Identity()
		gk := groupKey{table: ch.Rel.Schema + "." + ch.Rel.Table, id: id.Key}
		g := groups[gk]
		if g == nil {
			g = &rlsGroup{id: id, schema: ch.Rel.Schema, table: ch.Rel.Table}
			groups[gk] = g
		}
		if n := len(g.changes); n == 0 || g.changes[n-1] != d.change {
			g.changes = append(g.changes, d.change)
		}
	}
	// Column privileges once per (role, table).
	privs := make(map[string]map[string]bool) // role|schema.table → selectable; nil entry: lookup failed
	for _, d := range deliveries {
		ch := &batch[d.change]
		tkey := ch.Rel.Schema + "." + ch.Rel.Table
		role := d.sub.Identity().Role
		if _, ok := privs[role+"|"+tkey]; ok || facts[tkey].err != nil {
			continue
		}
		cols, err := p.cfg.Auth.SelectableColumns(ctx, role, ch.Rel.Schema, ch.Rel.Table)
		if errors.Is(err, ErrTransient) {
			return stats, err
		}
		if err != nil {
			p.log.Info("postgres_changes: privilege lookup failed", "role", role, "table", tkey, "err", err)
		}
		privs[role+"|"+tkey] = cols
	}
	if len(groups) > 0 {
		start := time.Now()
		if err := p.checkGroups(ctx, batch, facts, groups); err != nil {
			return stats, err
		}
		stats.RLSQueries = len(groups)
		stats.RLSDuration = time.Since(start)
	}
	if err := ctx.Err(); err != nil {
		return stats, err
	}

	// Encode once per (change, role, select) and frame once per (topic,
	// encoder, ids); queue in batch order.
	enc := newPayloadCache(p.cfg.MaxRecordBytes)
	var lastFrame struct {
		data    []byte
		change  int
		topic   string
		encoder Encoder
		ids     []int64
		frame   Frame
	}
	for _, d := range deliveries {
		ch := &batch[d.change]
		tkey := ch.Rel.Schema + "." + ch.Rel.Table
		f := facts[tkey]
		id := d.sub.Identity()
		if f.err != nil {
			p.log.Warn("postgres_changes: table lookup failed", "table", tkey, "err", f.err)
			continue
		}
		pk := privs[id.Role+"|"+tkey]
		if pk == nil {
			d.sub.Drop(DropColumnPrivilege)
			continue
		}
		var data []byte
		switch {
		case ch.Kind != decoder.Delete && len(f.info.PrimaryKey) == 0:
			data = enc.errorEvent(ch, errNoPrimaryKey)
		case ch.Kind != decoder.Delete && !allSelectable(f.info.PrimaryKey, pk):
			d.sub.Drop(DropColumnPrivilege)
			data = enc.errorEvent(ch, errUnauthorized)
		default:
			if ch.Kind != decoder.Delete && f.info.RLS {
				g := groups[groupKey{table: tkey, id: id.Key}]
				if g == nil || g.err != nil || !g.visible[d.change] {
					d.sub.Drop(DropRLS)
					continue
				}
			}
			data = enc.change(ch, d.change, id.Role, pk, d.sel, f.info)
		}
		var fr Frame
		if lastFrame.data != nil && lastFrame.change == d.change && &lastFrame.data[0] == &data[0] && lastFrame.topic == d.sub.Topic && lastFrame.encoder == d.sub.Encoder && equalIDs(lastFrame.ids, d.ids) {
			fr = lastFrame.frame
		} else {
			fr = d.sub.Encoder.EncodePostgresChange(d.sub.Topic, d.ids, data, cursors[d.change])
			fr.Cursor = cursors[d.change]
			lastFrame.change = d.change
			lastFrame.data, lastFrame.topic, lastFrame.encoder, lastFrame.ids, lastFrame.frame = data, d.sub.Topic, d.sub.Encoder, d.ids, fr
		}
		if current != nil {
			*current = d.change
		}
		if emit(d.sub, fr) {
			stats.Frames++
		}
	}
	return stats, nil
}

// checkGroups runs one Visible query per group, a bounded number at a time.
// A group whose query fails is denied; a transient failure of any group
// fails the whole batch so that it is redelivered.
func (p *PGChanges) checkGroups(ctx context.Context, batch []decoder.Change, facts map[string]*tableFacts, groups map[groupKey]*rlsGroup) error {
	sem := make(chan struct{}, p.cfg.Parallelism)
	var wg sync.WaitGroup
	for _, g := range groups {
		info := facts[g.schema+"."+g.table].info
		keys := make([][]string, len(g.changes))
		for i, ci := range g.changes {
			keys[i] = primaryKeyText(&batch[ci], info.PrimaryKey)
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(g *rlsGroup, keys [][]string) {
			defer func() { <-sem; wg.Done() }()
			vis, err := p.cfg.Auth.Visible(ctx, g.id, g.schema, g.table, keys)
			if err != nil {
				g.err = err
				p.log.Warn("postgres_changes: RLS check failed; group denied", "table", g.schema+"."+g.table, "role", g.id.Role, "err", err)
				return
			}
			g.visible = make(map[int]bool, len(vis))
			for i, ok := range vis {
				if ok && i < len(g.changes) {
					g.visible[g.changes[i]] = true
				}
			}
		}(g, keys)
	}
	wg.Wait()
	for _, g := range groups {
		if errors.Is(g.err, ErrTransient) {
			return g.err
		}
	}
	return nil
}

// primaryKeyText returns the text of the key columns from the new image.
func primaryKeyText(ch *decoder.Change, pk []string) []string {
	out := make([]string, len(pk))
	for i, name := range pk {
		if j := ch.Rel.ColumnIndex(name); j >= 0 && j < len(ch.New) {
			out[i] = ch.New[j].Text
		}
	}
	return out
}

func tableMatch(b *activeBinding, rel *decoder.Relation) bool {
	return (b.schema == "*" || b.schema == rel.Schema) && (b.table == "*" || b.table == rel.Table)
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func allSelectable(cols []string, selectable map[string]bool) bool {
	for _, c := range cols {
		if !selectable[c] {
			return false
		}
	}
	return true
}

// rowView lets a filter read a change's row image by column name.
type rowView struct {
	rel  *decoder.Relation
	vals []decoder.Value
}

// Lookup implements filter.Row.
func (r rowView) Lookup(column string) (filter.Value, bool) {
	i := r.rel.ColumnIndex(column)
	if i < 0 || i >= len(r.vals) || r.vals[i].Absent {
		return filter.Value{}, false
	}
	v := r.vals[i]
	return filter.Value{Null: v.Null, Text: v.Text}, true
}

// schemaTable formats a table name for logs.
func schemaTable(schema, table string) string { return strings.Join([]string{schema, table}, ".") }

// rowJSON renders a change's row compactly for the live tail.
func rowJSON(ch *decoder.Change) []byte {
	vals := ch.New
	if ch.Kind == decoder.Delete {
		vals = ch.Old
	}
	b := []byte{'{'}
	first := true
	for i, col := range ch.Rel.Columns {
		if i >= len(vals) || vals[i].Absent {
			continue
		}
		b = appendField(b, &first, col.Name, vals[i].JSON)
	}
	return append(b, '}')
}
