package channels

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/openrealtime/realtime/channels/filter"
)

// PGConfig configures PGChanges.
type PGConfig struct {
	// Hub delivers the frames. Required.
	Hub *Hub
	// Auth answers table, privilege and RLS questions. Required.
	Auth Authorizer
	// Logger receives logs; nil discards them.
	Logger *slog.Logger
	// MaxRecordBytes is the largest change delivered whole (default 1 MiB);
	// larger ones become "Error 413" events.
	MaxRecordBytes int
	// ActivateTimeout bounds the database work of one join (default 15 s).
	ActivateTimeout time.Duration
	// ReplayCount and ReplayAge bound the window of recent changes kept for
	// resumable transports (defaults 10,000 changes and 10 minutes).
	ReplayCount int
	ReplayAge   time.Duration
	// ReplayBytes bounds the window's size (default 64 MiB; negative: no
	// byte bound).
	ReplayBytes int
	// OnDelivery, when set, is called once per batch with per-stage
	// figures (for metrics).
	OnDelivery func(DeliveryStats)
	// ClassBudget is the time one subscriber class may spend on filter
	// evaluation per batch before the rest of the batch is dropped for it
	// (reason fanout_budget; docs/protocol.md §4.7). Zero means
	// [DefaultClassBudget]; negative disables the budget.
	ClassBudget time.Duration
}

// DeliveryStats describes the fan-out of one batch.
type DeliveryStats struct {
	// Changes is the number of changes in the batch.
	Changes int
	// Frames is the number of frames queued to subscribers.
	Frames int
	// RLSQueries is the number of RLS queries run.
	RLSQueries int
	// RLSDuration is the wall time spent waiting for RLS queries.
	RLSDuration time.Duration
	// Oldest is the commit time of the batch's first change.
	Oldest time.Time
	// OverBudget is the number of subscriber classes that passed their
	// fan-out budget in this batch.
	OverBudget int
}

// PGChanges is the postgres_changes pipeline: it turns join bindings into
// indexed subscriptions and fans decoded changes out to them, checking row
// level security once per identity group and encoding each payload once per
// visible column set. It is safe for concurrent use.
type PGChanges struct {
	cfg PGConfig
	hub *Hub
	log *slog.Logger

	replay *replayWindow

	mu sync.Mutex // guards up
	up bool       // the change source is streaming

	deniedMu sync.Mutex          // guards denied
	denied   map[string]struct{} // row-check denials already logged

	budgetMu     sync.Mutex           // guards budgetLogged
	budgetLogged map[string]time.Time // class key → when last logged over budget

	// now is the fan-out's clock (time.Now; tests substitute it).
	now func() time.Time
	// beforeFilter, when set (tests only), runs as part of a class's filter
	// evaluation for a change (its time is charged to the class).
	beforeFilter func(*subscriberClass)
}

// NewPGChanges returns a pipeline over cfg.
func NewPGChanges(cfg PGConfig) *PGChanges {
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = 1 << 20
	}
	if cfg.ActivateTimeout <= 0 {
		cfg.ActivateTimeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReplayCount == 0 {
		cfg.ReplayCount = 10000
	}
	if cfg.ReplayAge <= 0 {
		cfg.ReplayAge = 10 * time.Minute
	}
	if cfg.ReplayBytes == 0 {
		cfg.ReplayBytes = 64 << 20
	}
	if cfg.ClassBudget == 0 {
		cfg.ClassBudget = DefaultClassBudget
	}
	return &PGChanges{cfg: cfg, hub: cfg.Hub, log: cfg.Logger, replay: newReplayWindow(cfg.ReplayCount, cfg.ReplayAge, cfg.ReplayBytes),
		denied: make(map[string]struct{}), budgetLogged: make(map[string]time.Time), now: time.Now}
}

// bindingSpec is what Bind parsed from one postgres_changes element.
type bindingSpec struct {
	conds []filter.Condition
	err   string // parse error, reported at Activate
	wild  bool
}

// Bind parses the join's postgres_changes array (docs/protocol.md §4.6). It does
// no IO and never fails: parse errors are kept on the binding and reported
// by Activate, after the join reply (the channel stays joined).
func (p *PGChanges) Bind(raw []json.RawMessage) []*Binding {
	out := make([]*Binding, 0, len(raw))
	for _, r := range raw {
		out = append(out, parseBinding(r))
	}
	return out
}

// bindingID hashes the binding request; see realtime.BindingID for the
// same rule on the transport side.
func parseBinding(raw json.RawMessage) *Binding {
	b := &Binding{ID: bindingID(raw), Raw: raw}
	var req struct {
		Event  *string         `json:"event"`
		Schema *string         `json:"schema"`
		Table  *string         `json:"table"`
		Filter *string         `json:"filter"`
		Select json.RawMessage `json:"select"`
	}
	spec := &bindingSpec{}
	b.spec = spec
	if err := json.Unmarshal(raw, &req); err != nil {
		spec.err = "Error parsing postgres_changes params: " + err.Error()
		return b
	}
	b.Event = "*"
	if req.Event != nil {
		switch e := strings.ToUpper(*req.Event); e {
		case "INSERT", "UPDATE", "DELETE":
			b.Event = e
		}
	}
	hasSchema := req.Schema != nil && *req.Schema != ""
	hasTable := req.Table != nil && *req.Table != ""
	if req.Filter != nil {
		b.FilterText = *req.Filter
	}
	switch {
	case hasSchema && hasTable:
		b.Schema, b.Table = *req.Schema, *req.Table
	case hasSchema && !hasTable && strings.TrimSpace(b.FilterText) == "":
		b.Schema, b.Table = *req.Schema, "*"
	case !hasSchema && hasTable && strings.TrimSpace(b.FilterText) == "":
		b.Schema, b.Table = "public", *req.Table
	default:
		spec.err = "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: " + inspectParams(raw)
		return b
	}
	spec.wild = strings.Contains(b.Schema, "*") || strings.Contains(b.Table, "*")
	if sel := bytes.TrimSpace(req.Select); len(sel) > 0 && string(sel) != "null" {
		var cols []string
		if err := json.Unmarshal(sel, &cols); err != nil {
			spec.err = "Error parsing `select` params: expected a list of column name strings, e.g. select: [\"col1\", \"col2\"]"
			return b
		}
		if spec.wild {
			spec.err = "Column selection is not supported for wildcard subscriptions. Provide an explicit schema and table name."
			return b
		}
		b.Select = cols
	}
	conds, err := filter.Parse(b.FilterText)
	if err != nil {
		spec.err = err.Error()
		return b
	}
	if spec.wild && len(conds) > 0 {
		// A filter names columns of one table; on a wildcard it would be
		// silently ignored (docs/protocol.md §4.6).
		spec.err = errWildcardFilter
		return b
	}
	spec.conds = conds
	return b
}

// errWildcardFilter refuses a filter on a wildcard binding.
const errWildcardFilter = "Filters are not supported for wildcard subscriptions. Provide an explicit schema and table name."

// inspectParams renders the binding request roughly as the real server's
// error message does (an Elixir map).
func inspectParams(raw json.RawMessage) string {
	var m map[string]any
	json.Unmarshal(raw, &m)
	parts := make([]string, 0, len(m))
	for _, k := range []string{"event", "schema", "table", "filter"} {
		if v, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%q => %q", k, fmt.Sprint(v)))
		}
	}
	return "%{" + strings.Join(parts, ", ") + "}"
}

// activeBinding is a validated binding, ready to match changes.
type activeBinding struct {
	id     int64
	ids    []int64 // []int64{id}, shared by every frame that matches only this binding
	events uint8   // bit per decoder.Kind
	schema string
	table  string
	filter *filter.Filter
	sel    map[string]bool // nil: every column
}

// Activate validates bindings against the database under sub's identity
// and starts delivery (docs/protocol.md §4.6–4.8). The returned error's text is
// the client-facing system message.
func (p *PGChanges) Activate(sub *Subscription, bindings []*Binding) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.ActivateTimeout)
	defer cancel()
	id := sub.Identity()
	if id == nil {
		return errors.New("channels: subscription has no identity")
	}
	published, err := p.cfg.Auth.PublishedTables(ctx)
	if err != nil {
		//lint:ignore ST1005 the text is the client-facing system message (docs/protocol.md §4.8)
		return fmt.Errorf("Realtime was unable to connect to the project database: %w", err)
	}
	st := &pgState{}
	for _, b := range bindings {
		act, err := p.activateOne(ctx, id, b, published)
		if err != nil {
			p.log.Info("postgres_changes binding refused", "topic", sub.Topic, "err", err)
			return err
		}
		st.bindings = append(st.bindings, b)
		st.active = append(st.active, act...)
	}
	p.hub.setPG(sub, st)
	return nil
}

// activateOne validates one binding and expands partial wildcards.
func (p *PGChanges) activateOne(ctx context.Context, id *Identity, b *Binding, published []TableRef) ([]*activeBinding, error) {
	spec := b.spec
	if spec == nil {
		spec = parseBinding(b.Raw).spec
	}
	if spec.err != "" {
		return nil, errors.New(spec.err)
	}
	var events uint8
	switch b.Event {
	case "INSERT":
		events = 1 << 1
	case "UPDATE":
		events = 1 << 2
	case "DELETE":
		events = 1 << 3
	default:
		events = 1<<1 | 1<<2 | 1<<3
	}
	match := func(published []TableRef) (tables []TableRef) {
		for _, t := range published {
			if likeMatch(b.Schema, t.Schema) && likeMatch(b.Table, t.Table) {
				tables = append(tables, t)
			}
		}
		return tables
	}
	tables := match(published)
	if len(tables) == 0 {
		// The list may predate an ALTER PUBLICATION of a moment ago: look
		// again, bypassing caches, before refusing.
		p.cfg.Auth.Invalidate(b.Schema, b.Table)
		if fresh, err := p.cfg.Auth.PublishedTables(ctx); err == nil {
			tables = match(fresh)
		}
	}
	if len(tables) == 0 {
		return nil, errors.New(unableMessage(b, ""))
	}
	if spec.wild {
		// "*" alone is indexed as a wildcard so tables published later are
		// matched too; partial patterns expand to today's tables.
		if (b.Schema == "*" || !strings.Contains(b.Schema, "*")) && (b.Table == "*" || !strings.Contains(b.Table, "*")) {
			return []*activeBinding{{id: b.ID, ids: []int64{b.ID}, events: events, schema: b.Schema, table: b.Table}}, nil
		}
		out := make([]*activeBinding, 0, len(tables))
		for _, t := range tables {
			out = append(out, &activeBinding{id: b.ID, ids: []int64{b.ID}, events: events, schema: t.Schema, table: t.Table})
		}
		return out, nil
	}
	info, err := p.cfg.Auth.Table(ctx, b.Schema, b.Table)
	if err != nil {
		return nil, errors.New(unableMessage(b, err.Error()))
	}
	// A join checks privileges as they are now, not as cached.
	selectable, err := p.cfg.Auth.SelectableColumns(FreshContext(ctx), id.Role, b.Schema, b.Table)
	if err != nil {
		return nil, errors.New(unableMessage(b, err.Error()))
	}
	act := &activeBinding{id: b.ID, ids: []int64{b.ID}, events: events, schema: b.Schema, table: b.Table}
	if len(spec.conds) > 0 {
		cols := make(map[string]filter.Column, len(info.Columns))
		for _, c := range info.Columns {
			cols[c.Name] = filter.Column{Type: c.Type, Selectable: selectable[c.Name]}
		}
		f, err := filter.Compile(spec.conds, cols)
		if err != nil {
			return nil, errors.New(unableMessage(b, err.Error()))
		}
		act.filter = f
	}
	if b.Select != nil {
		act.sel = make(map[string]bool, len(b.Select)+len(info.PrimaryKey))
		for _, c := range b.Select {
			// A column the role may not select is refused with the same
			// text as an unknown one: a join must not probe column names.
			if !hasColumn(info, c) || !selectable[c] {
				return nil, errors.New(unableMessage(b, "invalid column for select "+c))
			}
			act.sel[c] = true
		}
		for _, k := range info.PrimaryKey {
			act.sel[k] = true
		}
	}
	return []*activeBinding{act}, nil
}

func hasColumn(info *TableInfo, name string) bool {
	for _, c := range info.Columns {
		if c.Name == name {
			return true
		}
	}
	return false
}

// unableMessage is the docs/protocol.md §4.8 insert-failure text; with a cause it is the
// "exception" variant.
func unableMessage(b *Binding, cause string) string {
	sel := "nil"
	if b.Select != nil {
		q := make([]string, len(b.Select))
		for i, c := range b.Select {
			q[i] = fmt.Sprintf("%q", c)
		}
		sel = "[" + strings.Join(q, ", ") + "]"
	}
	filters := "[]"
	if b.FilterText != "" {
		filters = "[" + b.FilterText + "]"
	}
	params := fmt.Sprintf("[event: %s, schema: %s, table: %s, filters: %s, select: %s]", b.Event, b.Schema, b.Table, filters, sel)
	if cause == "" {
		return "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: " + params
	}
	return "Unable to subscribe to changes with given parameters. An exception happened so please check your connect parameters: " + params + ". Exception: " + cause
}

// likeMatch matches name against pattern where "*" stands for any run of
// characters (the real server's LIKE with * mapped to %).
func likeMatch(pattern, name string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == name
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	for i, part := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(name, part)
		}
		j := strings.Index(name, part)
		if j < 0 {
			return false
		}
		name = name[j+len(part):]
	}
	return true
}

// Deactivate stops delivery to sub; it is idempotent.
func (p *PGChanges) Deactivate(sub *Subscription) { p.hub.setPG(sub, nil) }

// Recheck re-validates every live postgres_changes binding that names
// columns (a filter or a select) against the column privileges as they are
// now; call it after privilege or policy changes (the Authorizer's caches
// already dropped). A subscription whose binding names a column its role
// can no longer select loses its bindings and gets a system error
// (docs/protocol.md §4.5); it stays joined. Lookups that fail transiently
// leave the subscription alone. Returns the number of subscriptions ended.
func (p *PGChanges) Recheck(ctx context.Context) int {
	var subs []*Subscription
	p.hub.pg.all(func(s *Subscription) { subs = append(subs, s) })
	ended := 0
	for _, s := range subs {
		st := s.pg.Load()
		id := s.Identity()
		if st == nil || id == nil {
			continue
		}
		if col, table := p.lostColumn(ctx, id, st); col != "" {
			if s.pg.Load() != st {
				continue // rebound meanwhile
			}
			p.hub.setPG(s, nil)
			ended++
			p.log.Info("postgres_changes binding ended: column no longer selectable", "topic", s.Topic, "role", id.Role, "table", table, "column", col)
			s.deliver(s.Encoder.EncodeSystem(s.Topic, systemJSON("postgres_changes", "error", "Unable to continue with given parameters: column "+col+" of "+table+" is no longer selectable", s.Name)))
		}
	}
	return ended
}

// lostColumn returns a column that one of st's bindings reads but id's role
// may no longer select, with its table, or "".
func (p *PGChanges) lostColumn(ctx context.Context, id *Identity, st *pgState) (col, table string) {
	for _, ab := range st.active {
		if ab.filter == nil && ab.sel == nil {
			continue
		}
		cols, err := p.cfg.Auth.SelectableColumns(ctx, id.Role, ab.schema, ab.table)
		if errors.Is(err, ErrTransient) || ctx.Err() != nil {
			continue
		}
		var names []string
		if ab.filter != nil {
			names = ab.filter.Columns()
		}
		for c := range ab.sel {
			names = append(names, c)
		}
		for _, c := range names {
			if err != nil || !cols[c] {
				return c, ab.schema + "." + ab.table
			}
		}
	}
	return "", ""
}

// SourceState tells subscribers when changes stop or flow again: a system
// error when the source goes down, "Subscribed to PostgreSQL" when it is
// back (docs/protocol.md §3.5). The channels stay joined.
func (p *PGChanges) SourceState(up bool) {
	p.mu.Lock()
	was := p.up
	p.up = up
	p.mu.Unlock()
	if was == up {
		return
	}
	status, msg := "ok", "Subscribed to PostgreSQL"
	if !up {
		status, msg = "error", "Realtime was unable to connect to the project database"
	}
	p.hub.pg.all(func(s *Subscription) {
		s.deliver(s.Encoder.EncodeSystem(s.Topic, systemJSON("postgres_changes", status, msg, s.Name)))
	})
}

// systemJSON builds a system message payload.
func systemJSON(extension, status, message, channel string) []byte {
	b, _ := json.Marshal(struct {
		Extension string `json:"extension"`
		Status    string `json:"status"`
		Message   string `json:"message"`
		Channel   string `json:"channel"`
	}{extension, status, message, channel})
	return b
}
