package rls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openrealtime/realtime/channels"
)

// ErrNoPrimaryKey means the table has no primary key, so rows cannot be
// looked up; [Checker.Visible] returns it wrapped. A missing table or role
// is reported with [channels.ErrNoTable] or [channels.ErrNoRole].
var ErrNoPrimaryKey = errors.New("rls: table has no primary key")

// DefaultCacheTTL is how long a [Checker] keeps catalog answers when
// [CheckerConfig.CacheTTL] is zero.
const DefaultCacheTTL = 10 * time.Second

// publishedTTL is how long [Checker.PublishedTables] reuses its answer, so
// that a burst of joins costs one query.
const publishedTTL = time.Second

// maxIdentLen is NAMEDATALEN-1: PostgreSQL silently truncates longer names, so a
// longer name must never reach SQL (it could name a different object).
const maxIdentLen = 63

// CheckerConfig configures [NewChecker].
type CheckerConfig struct {
	// Pool is the database to ask. Required. Configure it with
	// ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol: the
	// Checker itself uses only the simple protocol, but other users of a shared
	// PGlite session must not leave named prepared statements behind.
	// standard_conforming_strings must be on and client_encoding UTF8 (the
	// defaults).
	Pool *pgxpool.Pool
	// Publication is the publication whose tables [Checker.PublishedTables]
	// lists.
	Publication string
	// Logger receives debug and warning logs; nil discards them.
	Logger *slog.Logger
	// CacheTTL is how long catalog answers (tables, column privileges,
	// policies) are reused. Zero means [DefaultCacheTTL]; negative disables
	// caching.
	CacheTTL time.Duration
	// Verify is the fraction (0..1) of compiled decisions re-checked by
	// PostgreSQL; disagreements are counted in [Checker.Stats].
	Verify float64
	// NoCompile sends every policy to PostgreSQL (tests, diagnosis).
	NoCompile bool
	// Parallel is how many connections one CheckRows call may use at
	// once for the groups PostgreSQL judges (split by rows). Zero means
	// [DefaultParallel]; 1 sends every group in one message.
	Parallel int
	// NoRefreshAhead turns off the background refresh of cached catalog
	// answers before they expire (the PGlite bridge: its single session
	// stalls with a query nobody waits for).
	NoRefreshAhead bool
}

// DefaultParallel is the default of [CheckerConfig.Parallel]: two messages
// at once let PostgreSQL use two cores for one batch's checks.
const DefaultParallel = 2

// Stats counts how row checks were answered.
type Stats struct {
	// CompiledGroups were judged in Go.
	CompiledGroups int64
	// SQLGroups were judged by PostgreSQL.
	SQLGroups int64
	// SharedGroups, of SQLGroups, were judged by one statement together
	// with other groups of their table and role (claims as rows).
	SharedGroups int64
	// VerifiedGroups were judged in Go and re-checked by PostgreSQL.
	VerifiedGroups int64
	// Disagreements counts verified groups where Go and PostgreSQL differed.
	Disagreements int64
	// LiveReads counts live-row fallback queries: unchanged TOASTed values
	// a policy reads, read from the live row (docs/protocol.md §4.5).
	LiveReads int64
}

// Stats returns the counters since the Checker was made. Safe for
// concurrent use.
func (c *Checker) Stats() Stats {
	return Stats{
		CompiledGroups: c.stats.compiled.Load(),
		SQLGroups:      c.stats.sqlGroups.Load(),
		SharedGroups:   c.stats.sharedGroups.Load(),
		VerifiedGroups: c.stats.verified.Load(),
		Disagreements:  c.stats.disagreements.Load(),
		LiveReads:      c.stats.liveReads.Load(),
	}
}

// Checker answers the database questions of postgres_changes delivery
// against one database: it implements [channels.Authorizer] (table facts,
// column privileges, row level security, the publication's tables), caching
// catalog lookups. It is safe for concurrent use. See [Checker.Visible] for
// the row check.
//
// Errors of Table, SelectableColumns and Visible are classified for the
// pipeline: a missing table or role matches [channels.ErrNoTable] or
// [channels.ErrNoRole]; a lost connection, a server shutting down or out of
// resources (SQLSTATE classes 08, 57, 53) and any other failure that is not
// a PostgreSQL error match [channels.ErrTransient]; other PostgreSQL errors
// (a policy raising, a missing privilege) and context errors are returned
// as they are, and deny.
type Checker struct {
	pool        *pgxpool.Pool
	publication string
	log         *slog.Logger
	ttl         time.Duration
	now         func() time.Time // replaced by tests

	verify    float64
	noCompile bool
	parallel  int

	tables *ttlCache[tableKey, *tableEntry]
	cols   *ttlCache[colsKey, map[string]bool]
	pols   *ttlCache[colsKey, *policySet]
	// funcs records that auth.uid/role/jwt were last seen standard; set
	// before a compiled policy is cached.
	funcs atomic.Pointer[stdFuncs]

	stats struct {
		compiled, sqlGroups, sharedGroups, verified, disagreements, liveReads atomic.Int64
	}

	pubMu     sync.Mutex          // guards published, pubLoaded
	published []channels.TableRef // nil: not loaded or invalidated
	pubLoaded time.Time
}

var _ channels.Authorizer = (*Checker)(nil)

// NewChecker returns a Checker for cfg.Pool. The Checker does not own the pool
// and never closes it.
func NewChecker(cfg CheckerConfig) *Checker {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	parallel := cfg.Parallel
	if parallel <= 0 {
		parallel = DefaultParallel
	}
	ttl := cfg.CacheTTL
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	c := &Checker{
		pool:        cfg.Pool,
		publication: cfg.Publication,
		log:         log,
		ttl:         ttl,
		now:         time.Now,
		verify:      cfg.Verify,
		noCompile:   cfg.NoCompile,
		parallel:    parallel,
		tables:      newTTLCache[tableKey, *tableEntry](),
		cols:        newTTLCache[colsKey, map[string]bool](),
		pols:        newTTLCache[colsKey, *policySet](),
	}
	c.tables.noAhead, c.cols.noAhead, c.pols.noAhead = cfg.NoRefreshAhead, cfg.NoRefreshAhead, cfg.NoRefreshAhead
	return c
}

type tableKey struct{ schema, table string }

type colsKey struct {
	tableKey
	role string
}

// tableEntry is a cached table: the public info plus what Visible needs to
// build its SQL.
type tableEntry struct {
	info *channels.TableInfo
	// pkCast[i] is the schema-qualified, quoted type of PrimaryKey[i], for
	// casting key literals.
	pkCast []string
	// colCast[i] is the schema-qualified, quoted type of Columns[i], for
	// casting image values.
	colCast []string
}

// Table returns the catalog description of schema.table, from the cache when
// fresh, otherwise with one catalog query. A missing table gives an error
// matching [channels.ErrNoTable]; see [Checker] for the other errors. Safe
// for concurrent use; the result is shared by all callers: treat it and its
// slices as read-only.
func (c *Checker) Table(ctx context.Context, schema, table string) (*channels.TableInfo, error) {
	e, err := c.table(ctx, schema, table)
	if err != nil {
		return nil, classify(err)
	}
	return e.info, nil
}

func (c *Checker) table(ctx context.Context, schema, table string) (*tableEntry, error) {
	if !validName(schema) || !validName(table) {
		return nil, fmt.Errorf("rls: table %q.%q: %w", schema, table, channels.ErrNoTable)
	}
	k := tableKey{schema, table}
	return c.tables.get(ctx, k, c.now, c.ttl, func(ctx context.Context) (*tableEntry, error) {
		return c.loadTable(ctx, k)
	})
}

// tableSQL lists the live columns of one table with their type and, for
// primary-key columns, their key position and whether the key's equality
// operator is leakproof. A table without columns still yields one row of NULLs.
const tableSQL = `SELECT c.relrowsecurity, a.attname::text, t.typname::text,
  pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(t.typname),
  pk.ord, pk.leakproof
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
LEFT JOIN LATERAL (
  SELECT k.ord, COALESCE(p.proleakproof, false) AS leakproof
  FROM pg_catalog.pg_index i
  CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(i.indkey::pg_catalog.int2[]),
    pg_catalog.unnest(i.indclass::pg_catalog.oid[])) WITH ORDINALITY AS k(attnum, opclass, ord)
  JOIN pg_catalog.pg_opclass oc ON oc.oid = k.opclass
  LEFT JOIN pg_catalog.pg_amop ao ON ao.amopfamily = oc.opcfamily AND ao.amopstrategy = 3
    AND ao.amoplefttype = oc.opcintype AND ao.amoprighttype = oc.opcintype
  LEFT JOIN pg_catalog.pg_operator o ON o.oid = ao.amopopr
  LEFT JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode
  WHERE i.indrelid = c.oid AND i.indisprimary AND k.attnum = a.attnum
) pk ON true
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
ORDER BY a.attnum`

func (c *Checker) loadTable(ctx context.Context, k tableKey) (*tableEntry, error) {
	rows, err := c.pool.Query(ctx, tableSQL, pgx.QueryExecModeSimpleProtocol, k.schema, k.table)
	if err != nil {
		return nil, fmt.Errorf("rls: table %q.%q: %w", k.schema, k.table, err)
	}
	defer rows.Close()
	info := &channels.TableInfo{Schema: k.schema, Table: k.table}
	type pkCol struct {
		name, cast string
		leakproof  bool
	}
	var pk []pkCol // indexed by key position - 1
	var colCast []string
	found := false
	for rows.Next() {
		var (
			name, typ, cast *string
			pos             *int64
			leakproof       *bool
		)
		if err := rows.Scan(&info.RLS, &name, &typ, &cast, &pos, &leakproof); err != nil {
			return nil, fmt.Errorf("rls: table %q.%q: scan: %w", k.schema, k.table, err)
		}
		found = true
		if name == nil {
			continue // table without columns
		}
		info.Columns = append(info.Columns, channels.TableColumn{Name: *name, Type: *typ})
		colCast = append(colCast, *cast)
		if pos != nil {
			p := int(*pos)
			if p < 1 || p > 32 { // INDEX_MAX_KEYS
				return nil, fmt.Errorf("rls: table %q.%q: primary key position %d out of range", k.schema, k.table, p)
			}
			for len(pk) < p {
				pk = append(pk, pkCol{})
			}
			pk[p-1] = pkCol{*name, *cast, leakproof != nil && *leakproof}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rls: table %q.%q: %w", k.schema, k.table, err)
	}
	if !found {
		return nil, fmt.Errorf("rls: table %q.%q: %w", k.schema, k.table, channels.ErrNoTable)
	}
	e := &tableEntry{info: info, colCast: colCast}
	for i, col := range pk {
		if col.name == "" {
			// An expression in the key: cannot happen for a primary key.
			return nil, fmt.Errorf("rls: table %q.%q: primary key column %d is not a plain column", k.schema, k.table, i+1)
		}
		info.PrimaryKey = append(info.PrimaryKey, col.name)
		e.pkCast = append(e.pkCast, col.cast)
	}
	return e, nil
}

// SelectableColumns returns the set of columns of schema.table that role may
// SELECT (has_column_privilege; a table-level grant covers every column). Only
// selectable columns are keys, all mapped to true. Answers are cached per
// (role, table). Errors match [channels.ErrNoTable] or [channels.ErrNoRole]
// when those are missing; see [Checker] for the others. Safe for concurrent
// use; the map is shared: do not modify it.
func (c *Checker) SelectableColumns(ctx context.Context, role, schema, table string) (map[string]bool, error) {
	if !validName(schema) || !validName(table) {
		return nil, fmt.Errorf("rls: column privileges of %q on %q.%q: %w", role, schema, table, channels.ErrNoTable)
	}
	if !validName(role) {
		return nil, fmt.Errorf("rls: column privileges of %q on %q.%q: %w", role, schema, table, channels.ErrNoRole)
	}
	k := colsKey{tableKey{schema, table}, role}
	cols, err := c.cols.get(ctx, k, c.now, c.ttl, func(ctx context.Context) (map[string]bool, error) {
		return c.loadColumns(ctx, k)
	})
	return cols, classify(err)
}

// columnsSQL reports, for every live column, whether the role may select it,
// plus whether the role exists; a table without columns still yields one row.
const columnsSQL = `SELECT r.oid IS NOT NULL, a.attname::text,
  COALESCE(pg_catalog.has_column_privilege(r.oid, c.oid, a.attnum, 'SELECT'), false)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_roles r ON r.rolname = $3
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`

func (c *Checker) loadColumns(ctx context.Context, k colsKey) (map[string]bool, error) {
	rows, err := c.pool.Query(ctx, columnsSQL, pgx.QueryExecModeSimpleProtocol, k.schema, k.table, k.role)
	if err != nil {
		return nil, fmt.Errorf("rls: column privileges of %q on %q.%q: %w", k.role, k.schema, k.table, err)
	}
	defer rows.Close()
	cols := make(map[string]bool)
	found, roleOK := false, false
	for rows.Next() {
		var (
			name *string
			ok   bool
		)
		if err := rows.Scan(&roleOK, &name, &ok); err != nil {
			return nil, fmt.Errorf("rls: column privileges of %q on %q.%q: scan: %w", k.role, k.schema, k.table, err)
		}
		found = true
		if name != nil && ok {
			cols[*name] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rls: column privileges of %q on %q.%q: %w", k.role, k.schema, k.table, err)
	}
	switch {
	case !found:
		return nil, fmt.Errorf("rls: column privileges of %q on %q.%q: %w", k.role, k.schema, k.table, channels.ErrNoTable)
	case !roleOK:
		return nil, fmt.Errorf("rls: column privileges of %q on %q.%q: %w", k.role, k.schema, k.table, channels.ErrNoRole)
	}
	return cols, nil
}

// Invalidate drops the cached description and column privileges of
// schema.table and the cached list of published tables, so the next call
// reads the catalog again; call it after DDL or GRANT/REVOKE on the table. A
// lookup already in flight is not reused by later callers and does not
// refill the cache. Safe for concurrent use; idempotent.
func (c *Checker) Invalidate(schema, table string) {
	k := tableKey{schema, table}
	c.tables.deleteIf(func(t tableKey) bool { return t == k })
	c.cols.deleteIf(func(ck colsKey) bool { return ck.tableKey == k })
	c.pols.deleteIf(func(ck colsKey) bool { return ck.tableKey == k })
	c.pubMu.Lock()
	c.published = nil
	c.pubMu.Unlock()
}

// PublishedTables lists the tables of the configured publication, reusing
// the answer for a second so that a burst of joins costs one query. Errors
// are returned wrapped, unclassified. Blocks for one query on a miss; safe
// for concurrent use; the slice is shared: do not modify it.
func (c *Checker) PublishedTables(ctx context.Context) ([]channels.TableRef, error) {
	c.pubMu.Lock()
	if c.published != nil && c.now().Sub(c.pubLoaded) < publishedTTL {
		t := c.published
		c.pubMu.Unlock()
		return t, nil
	}
	c.pubMu.Unlock()
	rows, err := c.pool.Query(ctx, "SELECT schemaname::text, tablename::text FROM pg_catalog.pg_publication_tables WHERE pubname = $1", c.publication)
	if err != nil {
		return nil, fmt.Errorf("list publication tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (channels.TableRef, error) {
		var t channels.TableRef
		err := r.Scan(&t.Schema, &t.Table)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list publication tables: %w", err)
	}
	if tables == nil {
		tables = []channels.TableRef{}
	}
	c.pubMu.Lock()
	c.published, c.pubLoaded = tables, c.now()
	c.pubMu.Unlock()
	return tables, nil
}

// validName reports whether s can be the name of a PostgreSQL object: not
// empty, at most 63 bytes (no silent truncation), valid UTF-8, no NUL.
func validName(s string) bool {
	return s != "" && len(s) <= maxIdentLen && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// ttlCache is a map whose entries expire, with concurrent misses of one key
// sharing a single load.
type ttlCache[K comparable, V any] struct {
	mu sync.Mutex // guards entries, flights, nextSweep
	// entries holds loaded values until their expiry.
	entries map[K]ttlEntry[V]
	// flights holds the load in progress for a key, if any.
	flights map[K]*flight[V]
	// nextSweep is when expired entries are next removed.
	nextSweep time.Time
	// noAhead turns off refreshes ahead of expiry; set before first use.
	noAhead bool
}

type ttlEntry[V any] struct {
	val     V
	started time.Time // when its load started
	expires time.Time
}

// flight is one load; val and err are written before done is closed.
type flight[V any] struct {
	started time.Time
	done    chan struct{}
	val     V
	err     error
}

func newTTLCache[K comparable, V any]() *ttlCache[K, V] {
	return &ttlCache[K, V]{entries: make(map[K]ttlEntry[V]), flights: make(map[K]*flight[V])}
}

// get returns the fresh cached value of k, or waits for the load in flight, or
// runs load itself. Errors are not cached. ttl <= 0 caches nothing. A waiter
// whose leader failed only because the leader's context ended retries. Under
// a [channels.FreshContext] only a load that started at or after the call
// answers.
func (tc *ttlCache[K, V]) get(ctx context.Context, k K, now func() time.Time, ttl time.Duration, load func(context.Context) (V, error)) (V, error) {
	var notBefore time.Time
	if channels.IsFresh(ctx) {
		notBefore = now()
	}
	for {
		tc.mu.Lock()
		if e, ok := tc.entries[k]; ok && now().Before(e.expires) && !e.started.Before(notBefore) {
			if !tc.noAhead && tc.flights[k] == nil && !now().Before(e.expires.Add(-ttl/refreshAhead)) {
				// Refresh ahead of expiry, off the caller's path, so that a
				// hot key never waits for its catalog query (a tail latency
				// of every change once per ttl otherwise).
				f := &flight[V]{started: now(), done: make(chan struct{})}
				tc.flights[k] = f
				go tc.run(context.WithoutCancel(ctx), k, f, now, ttl, load, refreshTimeout)
			}
			tc.mu.Unlock()
			return e.val, nil
		}
		if f := tc.flights[k]; f != nil && !f.started.Before(notBefore) {
			tc.mu.Unlock()
			select {
			case <-f.done:
				if f.err != nil && isContextErr(f.err) && ctx.Err() == nil {
					continue
				}
				return f.val, f.err
			case <-ctx.Done():
				var zero V
				return zero, ctx.Err()
			}
		}
		f := &flight[V]{started: now(), done: make(chan struct{})}
		tc.flights[k] = f
		tc.mu.Unlock()
		tc.run(ctx, k, f, now, ttl, load, 0)
		return f.val, f.err
	}
}

// refreshAhead sets when a cached value is refreshed in the background: in
// the last 1/refreshAhead of its ttl, at the first use then.
const refreshAhead = 4

// refreshTimeout bounds a background refresh.
const refreshTimeout = 30 * time.Second

// run performs flight f of key k (already registered in tc.flights), stores
// its value unless the key was invalidated meanwhile, and releases its
// waiters. timeout > 0 bounds the load.
func (tc *ttlCache[K, V]) run(ctx context.Context, k K, f *flight[V], now func() time.Time, ttl time.Duration, load func(context.Context) (V, error), timeout time.Duration) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	f.val, f.err = load(ctx)

	tc.mu.Lock()
	if tc.flights[k] == f { // not invalidated (nor replaced by a fresher load) meanwhile
		delete(tc.flights, k)
		if f.err == nil && ttl > 0 {
			t := now()
			tc.sweepLocked(t, ttl)
			tc.entries[k] = ttlEntry[V]{val: f.val, started: f.started, expires: t.Add(ttl)}
		}
	}
	tc.mu.Unlock()
	close(f.done)
}

// sweepLocked removes expired entries at most once per ttl, so keys that are
// never asked for again do not pile up. tc.mu must be held.
func (tc *ttlCache[K, V]) sweepLocked(now time.Time, ttl time.Duration) {
	if now.Before(tc.nextSweep) {
		return
	}
	for k, e := range tc.entries {
		if !now.Before(e.expires) {
			delete(tc.entries, k)
		}
	}
	tc.nextSweep = now.Add(ttl)
}

// deleteIf drops the entries and forgets the loads in flight whose key matches.
func (tc *ttlCache[K, V]) deleteIf(match func(K) bool) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for k := range tc.entries {
		if match(k) {
			delete(tc.entries, k)
		}
	}
	for k := range tc.flights {
		if match(k) {
			delete(tc.flights, k)
		}
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
