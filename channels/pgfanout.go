package channels

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/openrealtime/realtime/channels/filter"
	"github.com/openrealtime/realtime/decoder"
)

// Process fans a batch of changes out to matching subscriptions. It is a
// decoder.Sink: it returns once every frame has been queued (queues never
// block), so the source may then confirm the batch. Database errors for one
// identity group deny that group only; a transient database error
// ([ErrTransient]) fails the batch before anything is queued, so that it is
// redelivered; Process otherwise fails only when ctx ends. The batch is also
// kept in the replay window for SSE resume.
func (p *PGChanges) Process(ctx context.Context, batch []decoder.Change) error {
	if len(batch) == 0 {
		return nil
	}
	cursors := cursorsOf(batch)
	p.replay.add(batch, cursors)
	b := p.newBatch(batch, cursors, nil)
	defer b.release()
	err := b.run(ctx)
	if b.stats.Frames > 0 {
		p.hub.out.postgresChanges.Add(int64(b.stats.Frames))
	}
	if b.taps != nil {
		b.emitTaps()
	}
	if err == nil && p.cfg.OnDelivery != nil {
		p.cfg.OnDelivery(b.stats)
	}
	return err
}

// pgBatch is one fan-out of a batch of changes: live, to every subscriber
// class with a matching binding, or a replay to the one subscriber `only`.
// Its phases run in order, each filling in what the next one reads:
//
//	match      facts, deliveries (one per matching change × class); filter drops
//	authorize  privs, groups (one RLS query per table × identity)
//	encode     deliveries[i].data; privilege and RLS drops
//	deliver    frames queued in batch order (live) or collected in replayed
//
// An error from match or authorize ends the batch with nothing delivered.
// A pgBatch belongs to the goroutine that got it from newBatch until
// release puts it back in batchPool, maps and lists emptied but kept.
type pgBatch struct {
	p       *PGChanges
	changes []decoder.Change
	cursors []Cursor // by batch index
	// only, when set, is the subscriber a replay is for: only its class is
	// matched, frames go to replayed, and drops are not counted (the live
	// fan-out counted them already). onlyClass is its class at the start.
	only      *Subscription
	onlyClass *subscriberClass

	facts      map[*decoder.Relation]*tableFacts
	deliveries []delivery
	privs      map[privKey]map[string]bool // nil entry: lookup failed
	groups     map[groupKey]*rlsGroup
	groupOf    map[classTable]*rlsGroup         // groups by class, in front of groups' string keys
	frames     map[frameKey]Frame               // the serial fan-out's (or first part's) envelopes of the change being delivered
	partFrames []map[frameKey]Frame             // the other parts' envelopes, kept with their capacity
	shared     sharedFrames                     // a split fan-out's envelopes, built once for all parts
	spend      map[*subscriberClass]*classSpend // live only: filter time per class (pgbudget.go)

	replayed []Frame        // replay only: the frames for only, in order
	taps     map[tapKey]int // live only, while a tap is installed
	tapping  bool
	stats    DeliveryStats
}

// delivery is one (change, class) pair that matched a binding.
type delivery struct {
	change int
	class  *subscriberClass
	ids    []int64
	sel    map[string]bool // select restriction of the first matching binding with one; nil for all
	data   []byte          // the data object, set by encode; nil: nothing to send
	group  *rlsGroup       // the RLS check of its class and table, set by authorize; nil when none
	// deferred: filters were not applied at match (a full-image DELETE
	// under RLS); ids and sel are recomputed by payload once visible.
	deferred bool
}

// tableFacts are the per-batch facts about one table.
type tableFacts struct {
	info *TableInfo
	err  error
	key  string // schema.table
}

// privKey identifies one column-privilege lookup: a role and a table.
type privKey struct {
	role string
	rel  *decoder.Relation
}

// groupKey identifies one RLS query: a table and an identity.
type groupKey struct {
	table string // schema.table
	id    string // Identity.Key
}

// classTable identifies a class's group for one table within a batch.
type classTable struct {
	class *subscriberClass
	rel   *decoder.Relation
}

// rlsGroup is one RLS query: the changes of one table to check for one
// identity, and the answer.
type rlsGroup struct {
	id      *Identity
	schema  string
	table   string
	changes []int  // batch indices, unique, ascending
	visible []bool // by batch index
	err     error
}

// tapKey identifies one live-tail event: a topic and a batch index.
type tapKey struct {
	topic  string
	change int
}

// frameKey identifies one envelope of a change: the data object framed for
// a topic by an encoder with a set of binding ids.
type frameKey struct {
	topic   string
	encoder Encoder
	data    *byte
	ids     string
}

// batchPool recycles pgBatch values with their maps and delivery list,
// which holds one entry per (change, class) pair and would otherwise
// dominate garbage.
var batchPool = sync.Pool{New: func() any {
	return &pgBatch{
		facts:      make(map[*decoder.Relation]*tableFacts),
		deliveries: make([]delivery, 0, 1024),
		privs:      make(map[privKey]map[string]bool),
		groups:     make(map[groupKey]*rlsGroup),
		groupOf:    make(map[classTable]*rlsGroup),
		frames:     make(map[frameKey]Frame),
		spend:      make(map[*subscriberClass]*classSpend),
	}
}}

// newBatch prepares the fan-out of batch, to every class or (only set) to
// only's class alone. The caller must release it.
func (p *PGChanges) newBatch(batch []decoder.Change, cursors []Cursor, only *Subscription) *pgBatch {
	b := batchPool.Get().(*pgBatch)
	b.p, b.changes, b.cursors, b.only = p, batch, cursors, only
	b.stats = DeliveryStats{Changes: len(batch), Oldest: batch[0].CommitTime}
	if only != nil {
		p.hub.pg.mu.RLock()
		b.onlyClass = only.class
		p.hub.pg.mu.RUnlock()
	} else {
		b.tapping = p.hub.tap.Load() != nil
	}
	return b
}

// release empties b, dropping every reference it holds, and puts it back
// in batchPool. b must not be used afterwards.
func (b *pgBatch) release() {
	clear(b.deliveries)
	b.deliveries = b.deliveries[:0]
	clear(b.facts)
	clear(b.privs)
	clear(b.groups)
	clear(b.groupOf)
	clear(b.frames)
	for _, m := range b.partFrames {
		clear(m)
	}
	clear(b.shared.m)
	clear(b.spend)
	b.p, b.changes, b.cursors, b.only, b.onlyClass = nil, nil, nil, nil, nil
	b.replayed, b.taps, b.tapping, b.stats = nil, nil, false, DeliveryStats{}
	batchPool.Put(b)
}

// run executes the phases in order.
func (b *pgBatch) run(ctx context.Context) error {
	if b.only != nil && b.onlyClass == nil {
		return nil // only has no bindings
	}
	if err := b.match(ctx); err != nil {
		return err
	}
	if len(b.deliveries) == 0 {
		return ctx.Err()
	}
	if err := b.authorize(ctx); err != nil {
		return err
	}
	b.encode()
	b.deliver()
	return nil
}

// match records, in batch order, one delivery per (change, candidate class)
// whose bindings match the change, looking each table up once. A transient
// lookup error fails the batch.
func (b *pgBatch) match(ctx context.Context) error {
	var cands []*subscriberClass
	for ci := range b.changes {
		ch := &b.changes[ci]
		if b.only != nil {
			cands = append(cands[:0], b.onlyClass)
		} else {
			cands = b.p.hub.pg.candidates(ch.Rel.Schema, ch.Rel.Table, cands[:0])
		}
		if len(cands) == 0 {
			continue
		}
		if err := b.lookupTable(ctx, ch.Rel); err != nil {
			return err
		}
		row := rowView{rel: ch.Rel, vals: ch.New}
		if ch.Kind == decoder.Delete {
			row.vals = ch.Old
		}
		// On a table with row level security a full old image is judged
		// before any filter sees it (docs/protocol.md §4.5).
		deferFilters := ch.Kind == decoder.Delete && fullOld(ch)
		if f := b.facts[ch.Rel]; f.err != nil || !f.info.RLS {
			deferFilters = false
		}
		for _, c := range cands {
			if d, ok := b.matchClass(ci, c, row, deferFilters); ok {
				b.deliveries = append(b.deliveries, d)
			}
		}
	}
	return nil
}

// lookupTable records the facts about rel once per batch. Only a transient
// error is returned; others are kept in the facts (the table's deliveries
// are then skipped).
func (b *pgBatch) lookupTable(ctx context.Context, rel *decoder.Relation) error {
	if b.facts[rel] != nil {
		return nil
	}
	info, err := b.p.cfg.Auth.Table(ctx, rel.Schema, rel.Table)
	if errors.Is(err, ErrTransient) {
		return err // redeliver the batch later; nothing was sent
	}
	b.facts[rel] = &tableFacts{info: info, err: err, key: rel.Schema + "." + rel.Table}
	return nil
}

// matchClass reports whether a binding of class c matches change ci, and
// the delivery with every matching binding id. A change that only filters
// rejected counts as a filter drop for the class (live fan-out only).
func (b *pgBatch) matchClass(ci int, c *subscriberClass, row rowView, skipFilters bool) (delivery, bool) {
	ch := &b.changes[ci]
	if b.overBudget(c) {
		for _, ab := range c.active {
			if ab.events&(1<<ch.Kind) != 0 && tableMatch(ab, ch.Rel) {
				c.drop(DropFanoutBudget) // a change it might have had
				break
			}
		}
		return delivery{}, false
	}
	var ids []int64
	var sel map[string]bool
	var start time.Time // set at the class's first filter for this change
	filtered := false
	for _, ab := range c.active {
		if ab.events&(1<<ch.Kind) == 0 || !tableMatch(ab, ch.Rel) {
			continue
		}
		if ab.filter != nil && !skipFilters {
			if start.IsZero() {
				start = b.p.now()
				if b.p.beforeFilter != nil {
					b.p.beforeFilter(c)
				}
			}
			if !ab.filter.Match(row) {
				filtered = true
				continue
			}
		}
		switch {
		case ids == nil:
			ids = ab.ids // shared one-element slice, never modified
		case !containsID(ids, ab.id):
			ids = append(ids[:len(ids):len(ids)], ab.id)
		}
		if ab.sel != nil && sel == nil {
			sel = ab.sel
		}
	}
	if !start.IsZero() {
		b.charge(c, b.p.now().Sub(start))
	}
	if len(ids) == 0 {
		if filtered && b.only == nil {
			c.drop(DropFilter)
		}
		return delivery{}, false
	}
	return delivery{change: ci, class: c, ids: ids, sel: sel, deferred: skipFilters}, true
}

// authorize looks up column privileges once per (role, table), groups the
// row images that need a check by (table, identity) and asks the
// Authorizer once for the whole batch (docs/protocol.md §4.5). A transient
// error fails the batch.
func (b *pgBatch) authorize(ctx context.Context) error {
	for i := range b.deliveries {
		d := &b.deliveries[i]
		ch := &b.changes[d.change]
		f := b.facts[ch.Rel]
		if f.err != nil {
			continue
		}
		if err := b.lookupPrivileges(ctx, d.class.id.Role, ch.Rel, f); err != nil {
			return err
		}
		if !f.info.RLS || !needsRowCheck(ch) {
			continue
		}
		ck := classTable{d.class, ch.Rel}
		g := b.groupOf[ck]
		if g == nil {
			gk := groupKey{table: f.key, id: d.class.id.Key}
			g = b.groups[gk]
			if g == nil {
				g = &rlsGroup{id: d.class.id, schema: ch.Rel.Schema, table: ch.Rel.Table}
				b.groups[gk] = g
			}
			b.groupOf[ck] = g
		}
		d.group = g
		if n := len(g.changes); n == 0 || g.changes[n-1] != d.change {
			g.changes = append(g.changes, d.change)
		}
	}
	if len(b.groups) > 0 {
		start := time.Now()
		if err := b.checkGroups(ctx); err != nil {
			return err
		}
		b.stats.RLSQueries = len(b.groups)
		b.stats.RLSDuration = time.Since(start)
	}
	return ctx.Err()
}

// needsRowCheck reports whether a change is judged on its image: INSERT
// and UPDATE always (the new tuple), DELETE only with a full old tuple
// (REPLICA IDENTITY FULL); a key-only DELETE is delivered as Supabase does
// (docs/protocol.md §4.5).
func needsRowCheck(ch *decoder.Change) bool {
	if ch.Kind != decoder.Delete {
		return true
	}
	return fullOld(ch)
}

// fullOld reports whether a DELETE carries the whole old row.
func fullOld(ch *decoder.Change) bool {
	if ch.Rel.ReplicaIdentity != 'f' || len(ch.Old) != len(ch.Rel.Columns) {
		return false
	}
	return true
}

// rowImage is the committed row a change is judged on: the new tuple, with
// unchanged TOASTed values (absent) taken from the old tuple when it has
// them, or the old tuple of a DELETE.
func rowImage(ch *decoder.Change) []decoder.Value {
	if ch.Kind == decoder.Delete {
		return ch.Old
	}
	img := ch.New
	for i := range img {
		if img[i].Absent && i < len(ch.Old) && !ch.Old[i].Absent {
			if &img[0] == &ch.New[0] {
				img = append([]decoder.Value(nil), ch.New...)
			}
			img[i] = ch.Old[i]
		}
	}
	return img
}

// lookupPrivileges records the columns role may select in rel once per
// batch; a failed lookup is logged and recorded as nil. Only a transient
// error is returned.
func (b *pgBatch) lookupPrivileges(ctx context.Context, role string, rel *decoder.Relation, f *tableFacts) error {
	pk := privKey{role, rel}
	if _, ok := b.privs[pk]; ok {
		return nil
	}
	cols, err := b.p.cfg.Auth.SelectableColumns(ctx, role, rel.Schema, rel.Table)
	if errors.Is(err, ErrTransient) {
		return err
	}
	if err != nil {
		b.p.log.Info("postgres_changes: privilege lookup failed", "role", role, "table", f.key, "err", err)
	}
	b.privs[pk] = cols
	return nil
}

// checkGroups asks the Authorizer about every group in one call (one
// database round trip at most). A group whose check fails for good is
// denied alone; a transient failure fails the whole batch so that it is
// redelivered.
func (b *pgBatch) checkGroups(ctx context.Context) error {
	p, n := b.p, len(b.changes)
	images := make(map[int][]decoder.Value) // batch index → image, shared by every group
	checks := make([]*RowCheck, 0, len(b.groups))
	owners := make([]*rlsGroup, 0, len(b.groups))
	for _, g := range b.groups {
		imgs := make([][]decoder.Value, len(g.changes))
		for i, ci := range g.changes {
			img, ok := images[ci]
			if !ok {
				img = rowImage(&b.changes[ci])
				images[ci] = img
			}
			imgs[i] = img
		}
		checks = append(checks, &RowCheck{ID: g.id, Rel: b.changes[g.changes[0]].Rel, Images: imgs})
		owners = append(owners, g)
	}
	if err := p.cfg.Auth.CheckRows(ctx, checks); err != nil {
		return err
	}
	for k, ck := range checks {
		g := owners[k]
		if ck.Err != nil {
			g.err = ck.Err
			p.logDenied(g, ck.Err)
			continue
		}
		g.visible = make([]bool, n)
		for i, ok := range ck.Visible {
			if ok && i < len(g.changes) {
				g.visible[g.changes[i]] = true
			}
		}
	}
	return nil
}

// logDenied logs a group denied by a failed check once per (table, role,
// error text), so a permanently failing identity does not flood the log.
func (p *PGChanges) logDenied(g *rlsGroup, err error) {
	key := g.schema + "." + g.table + "\x00" + g.id.Role + "\x00" + err.Error()
	p.deniedMu.Lock()
	_, seen := p.denied[key]
	if !seen {
		if len(p.denied) >= maxDeniedLogged {
			clear(p.denied)
		}
		p.denied[key] = struct{}{}
	}
	p.deniedMu.Unlock()
	if !seen {
		p.log.Warn("postgres_changes: row check failed; group denied", "table", g.schema+"."+g.table, "role", g.id.Role, "err", err)
	}
}

// maxDeniedLogged bounds the set of denials already logged.
const maxDeniedLogged = 1024

// encode sets each delivery's data object, in batch order: the row as its
// class may see it (encoded once per change, role and select set), an
// error event, or nil when the class may not see the change (a drop).
func (b *pgBatch) encode() {
	enc := newPayloadCache(b.p.cfg.MaxRecordBytes)
	for i := range b.deliveries {
		b.deliveries[i].data = b.payload(enc, &b.deliveries[i])
	}
}

// payload decides what d's class gets for its change; see encode.
func (b *pgBatch) payload(enc *payloadCache, d *delivery) []byte {
	ch := &b.changes[d.change]
	f := b.facts[ch.Rel]
	if f.err != nil {
		b.p.log.Warn("postgres_changes: table lookup failed", "table", f.key, "err", f.err)
		return nil
	}
	id := d.class.id
	cols := b.privs[privKey{id.Role, ch.Rel}]
	if len(cols) == 0 {
		// No SELECT on any column: nothing about the table is this role's
		// business, not even an error event or a DELETE's key.
		b.drop(d, DropColumnPrivilege)
		return nil
	}
	switch {
	case ch.Kind == decoder.Delete && !allSelectable(f.info.PrimaryKey, cols):
		b.drop(d, DropColumnPrivilege)
		return nil
	case ch.Kind != decoder.Delete && len(f.info.PrimaryKey) == 0:
		return enc.errorEvent(ch, errNoPrimaryKey)
	case ch.Kind != decoder.Delete && !allSelectable(f.info.PrimaryKey, cols):
		b.drop(d, DropColumnPrivilege)
		return enc.errorEvent(ch, errUnauthorized)
	}
	if f.info.RLS && needsRowCheck(ch) {
		g := d.group
		if g == nil || g.err != nil || g.visible == nil || !g.visible[d.change] {
			b.drop(d, DropRLS)
			return nil
		}
	}
	if d.deferred {
		// A full-image DELETE under RLS: filters run only now that the old
		// row is known to be visible, so they cannot probe hidden rows.
		md, ok := b.matchClass(d.change, d.class, rowView{rel: ch.Rel, vals: ch.Old}, false)
		if !ok {
			return nil
		}
		d.ids, d.sel = md.ids, md.sel
	}
	return enc.change(ch, d.change, id.Role, cols, d.sel, f.info)
}

// drop records a drop for d's class; replays do not count, as the live
// fan-out already did.
func (b *pgBatch) drop(d *delivery, r DropReason) {
	if b.only == nil {
		d.class.drop(r)
	}
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
		b = appendField(b, &first, col.Name, vals[i].RenderedJSON())
	}
	return append(b, '}')
}
