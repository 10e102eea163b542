package channels

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/openrealtime/realtime/channels/filter"
	"github.com/openrealtime/realtime/decoder"
)

// delivery is one (change, class) pair that matched a binding.
type delivery struct {
	change int
	class  *subscriberClass
	ids    []int64
	sel    map[string]bool // select restriction of the first matching binding with one; nil for all
	only   *Subscription   // deliver to this member only (replay)
}

// tableFacts are the per-batch facts about one table.
type tableFacts struct {
	info *TableInfo
	err  error
	key  string // schema.table
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
	changes []int  // batch indices, unique, ascending
	visible []bool // by batch index
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
	type topicRef struct {
		topic   string
		private bool
	}
	perTopic := make(map[topicRef]int64)
	cur := 0
	stats, err := p.fanOut(ctx, batch, cursors, nil, func(s *Subscription, f Frame) bool {
		if !s.deliver(f) {
			return false
		}
		perTopic[topicRef{s.Topic, s.Private}]++
		if tapping {
			if taps == nil {
				taps = make(map[tapKey]int)
			}
			taps[tapKey{s.Topic, cur}]++
		}
		return true
	}, &cur)
	for ref, n := range perTopic {
		if t := p.hub.lookup(TopicKey(ref.topic, ref.private)); t != nil {
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

// fanOut matches, checks and encodes batch for the candidate classes
// (every indexed one, or only the class of `only`, delivering to `only`
// alone) and emits frames in batch order. current, when set, is updated to
// the batch index of the frame being emitted.
func (p *PGChanges) fanOut(ctx context.Context, batch []decoder.Change, cursors []Cursor, only *Subscription, emit func(*Subscription, Frame) bool, current *int) (DeliveryStats, error) {
	stats := DeliveryStats{Changes: len(batch), Oldest: batch[0].CommitTime}
	facts := make(map[*decoder.Relation]*tableFacts)
	dp := deliveryPool.Get().(*[]delivery)
	deliveries := (*dp)[:0]
	defer func() {
		clear(deliveries) // drop references before pooling
		*dp = deliveries[:0]
		deliveryPool.Put(dp)
	}()
	var cands []*subscriberClass
	var onlyClass *subscriberClass
	if only != nil {
		p.hub.pg.mu.RLock()
		onlyClass = only.class
		p.hub.pg.mu.RUnlock()
		if onlyClass == nil {
			return stats, nil
		}
	}
	for ci := range batch {
		ch := &batch[ci]
		if onlyClass != nil {
			cands = append(cands[:0], onlyClass)
		} else {
			cands = p.hub.pg.candidates(ch.Rel.Schema, ch.Rel.Table, cands[:0])
		}
		if len(cands) == 0 {
			continue
		}
		if facts[ch.Rel] == nil {
			info, err := p.cfg.Auth.Table(ctx, ch.Rel.Schema, ch.Rel.Table)
			if errors.Is(err, ErrTransient) {
				return stats, err // redeliver the batch later; nothing was sent
			}
			facts[ch.Rel] = &tableFacts{info: info, err: err, key: ch.Rel.Schema + "." + ch.Rel.Table}
		}
		row := rowView{rel: ch.Rel, vals: ch.New}
		if ch.Kind == decoder.Delete {
			row.vals = ch.Old
		}
		for _, c := range cands {
			var ids []int64
			var sel map[string]bool
			filtered := false
			for _, b := range c.active {
				if b.events&(1<<ch.Kind) == 0 || !tableMatch(b, ch.Rel) {
					continue
				}
				if b.filter != nil && !b.filter.Match(row) {
					filtered = true
					continue
				}
				switch {
				case ids == nil:
					ids = b.ids // shared one-element slice, never modified
				case !containsID(ids, b.id):
					ids = append(ids[:len(ids):len(ids)], b.id)
				}
				if b.sel != nil && sel == nil {
					sel = b.sel
				}
			}
			if len(ids) == 0 {
				if filtered && only == nil {
					c.drop(DropFilter)
				}
				continue
			}
			deliveries = append(deliveries, delivery{change: ci, class: c, ids: ids, sel: sel, only: only})
		}
	}
	if len(deliveries) == 0 {
		return stats, ctx.Err()
	}

	// Column privileges once per (role, table); RLS rows grouped by
	// (table, identity).
	type privKey struct {
		role string
		rel  *decoder.Relation
	}
	privs := make(map[privKey]map[string]bool) // nil entry: lookup failed
	groups := make(map[groupKey]*rlsGroup)
	for _, d := range deliveries {
		ch := &batch[d.change]
		f := facts[ch.Rel]
		if f.err != nil {
			continue
		}
		id := d.class.id
		pk := privKey{id.Role, ch.Rel}
		if _, ok := privs[pk]; !ok {
			cols, err := p.cfg.Auth.SelectableColumns(ctx, id.Role, ch.Rel.Schema, ch.Rel.Table)
			if errors.Is(err, ErrTransient) {
				return stats, err
			}
			if err != nil {
				p.log.Info("postgres_changes: privilege lookup failed", "role", id.Role, "table", f.key, "err", err)
			}
			privs[pk] = cols
		}
		if ch.Kind == decoder.Delete || !f.info.RLS || len(f.info.PrimaryKey) == 0 {
			continue
		}
		gk := groupKey{table: f.key, id: id.Key}
		g := groups[gk]
		if g == nil {
			g = &rlsGroup{id: id, schema: ch.Rel.Schema, table: ch.Rel.Table}
			groups[gk] = g
		}
		if n := len(g.changes); n == 0 || g.changes[n-1] != d.change {
			g.changes = append(g.changes, d.change)
		}
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

	// Encode the data once per (change, role, select), the envelope once
	// per (topic, encoder, ids), and queue in batch order.
	enc := newPayloadCache(p.cfg.MaxRecordBytes)
	type frameKey struct {
		topic   string
		encoder Encoder
		data    *byte
		ids     string
	}
	frames := make(map[frameKey]Frame)
	framesFor := -1 // batch index the frame cache holds
	for _, d := range deliveries {
		ch := &batch[d.change]
		f := facts[ch.Rel]
		if f.err != nil {
			p.log.Warn("postgres_changes: table lookup failed", "table", f.key, "err", f.err)
			continue
		}
		id := d.class.id
		cols := privs[privKey{id.Role, ch.Rel}]
		if cols == nil {
			d.dropFor(DropColumnPrivilege)
			continue
		}
		var data []byte
		switch {
		case ch.Kind != decoder.Delete && len(f.info.PrimaryKey) == 0:
			data = enc.errorEvent(ch, errNoPrimaryKey)
		case ch.Kind != decoder.Delete && !allSelectable(f.info.PrimaryKey, cols):
			d.dropFor(DropColumnPrivilege)
			data = enc.errorEvent(ch, errUnauthorized)
		default:
			if ch.Kind != decoder.Delete && f.info.RLS {
				g := groups[groupKey{table: f.key, id: id.Key}]
				if g == nil || g.err != nil || g.visible == nil || !g.visible[d.change] {
					d.dropFor(DropRLS)
					continue
				}
			}
			data = enc.change(ch, d.change, id.Role, cols, d.sel, f.info)
		}
		if framesFor != d.change {
			clear(frames)
			framesFor = d.change
		}
		idsKey := idsString(d.ids)
		members := *d.class.members.Load()
		if d.only != nil {
			members = []*Subscription{d.only}
		}
		if current != nil {
			*current = d.change
		}
		for _, s := range members {
			fk := frameKey{s.Topic, s.Encoder, &data[0], idsKey}
			fr, ok := frames[fk]
			if !ok {
				fr = s.Encoder.EncodePostgresChange(s.Topic, d.ids, data, cursors[d.change])
				fr.Cursor = cursors[d.change]
				frames[fk] = fr
			}
			if emit(s, fr) {
				stats.Frames++
			}
		}
	}
	return stats, nil
}

// deliveryPool recycles the per-batch delivery lists, which hold one entry
// per (change, class) pair and would otherwise dominate garbage.
var deliveryPool = sync.Pool{New: func() any { s := make([]delivery, 0, 1024); return &s }}

// dropFor records a drop for the delivery's class, or for the one member
// it is restricted to.
func (d *delivery) dropFor(r DropReason) {
	if d.only != nil {
		return // replays do not count: the live path already did
	}
	d.class.drop(r)
}

// checkGroups runs one Visible query per group, a bounded number at a time.
// A group whose query fails is denied; a transient failure of any group
// fails the whole batch so that it is redelivered.
func (p *PGChanges) checkGroups(ctx context.Context, batch []decoder.Change, facts map[*decoder.Relation]*tableFacts, groups map[groupKey]*rlsGroup) error {
	sem := make(chan struct{}, p.cfg.Parallelism)
	var wg sync.WaitGroup
	pkText := make(map[int][]string) // batch index → key text, shared by every group
	for _, g := range groups {
		info := facts[batch[g.changes[0]].Rel].info
		keys := make([][]string, len(g.changes))
		for i, ci := range g.changes {
			k, ok := pkText[ci]
			if !ok {
				k = primaryKeyText(&batch[ci], info.PrimaryKey)
				pkText[ci] = k
			}
			keys[i] = k
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
			g.visible = make([]bool, len(batch))
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

// idsString is a map key for a list of binding ids.
func idsString(ids []int64) string {
	if len(ids) == 1 {
		return strconv.FormatInt(ids[0], 10)
	}
	b := make([]byte, 0, 12*len(ids))
	for _, id := range ids {
		b = strconv.AppendInt(b, id, 10)
		b = append(b, ',')
	}
	return string(b)
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
