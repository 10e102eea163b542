package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/decoder"
)

// pgFeed is a running postgres_changes pipeline: a change source feeding
// channels.PGChanges, with auth.Checker answering RLS questions.
type pgFeed struct {
	// streaming is closed the first time the source streams, i.e. once the
	// slot (or change table) exists and changes are being captured.
	streaming chan struct{}
	once      sync.Once

	*channels.PGChanges
	source decoder.Source
	pool   *pgxpool.Pool
	cancel context.CancelFunc
	done   chan struct{}
}

// Close stops the source (it confirms what was delivered) and the pool.
func (f *pgFeed) Close() {
	f.cancel()
	<-f.done
	f.pool.Close()
}

// startFeed starts the change source and pipeline when a database is
// configured; it returns nil without one. onDelivery, when set, observes
// every fanned-out batch (metrics).
func startFeed(ctx context.Context, o *options, log *slog.Logger, hub *channels.Hub, onDelivery func(channels.DeliveryStats)) (*pgFeed, error) {
	if o.DBURL == "" {
		return nil, nil
	}
	pcfg, err := pgxpool.ParseConfig(o.DBURL)
	if err != nil {
		return nil, fmt.Errorf("parse --db-url: %w", err)
	}
	// Simple protocol only: no named statements, no session state, so the
	// same code is safe on PGlite's shared session.
	pcfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	pcfg.MaxConns = 8
	if o.Source == "notify" {
		pcfg.MaxConns = 2
	}
	pcfg.MinConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	checker := auth.NewChecker(auth.CheckerConfig{Pool: pool, Logger: log})
	authz := &authorizer{checker: checker, pool: pool, publication: o.Publication}
	pg := channels.NewPGChanges(channels.PGConfig{
		Hub: hub, Auth: authz, Logger: log, Parallelism: int(pcfg.MaxConns),
		ReplayCount: o.SSEReplayCount, ReplayAge: o.SSEReplayAge,
		OnDelivery: onDelivery,
	})

	f := &pgFeed{PGChanges: pg, pool: pool, done: make(chan struct{}), streaming: make(chan struct{})}
	var src decoder.Source
	// onState tells subscribers when changes stop and flow again, and marks
	// the feed streaming the first time.
	onState := func(up bool) {
		if up {
			pg.SetReplayBase(src.Status().ConfirmedPosition)
			f.once.Do(func() { close(f.streaming) })
		}
		pg.SourceState(up)
	}
	// onRelation drops cached privileges and table facts after DDL.
	onRelation := func(r *decoder.Relation) { checker.Invalidate(r.Schema, r.Table) }
	switch o.Source {
	case "logical":
		src = decoder.NewLogical(decoder.LogicalConfig{
			DBURL:       o.DBURL,
			Slot:        o.Slot,
			Publication: o.Publication,
			Logger:      log,
			OnState:     onState,
			OnRelation:  onRelation,
		})
	case "notify":
		src = decoder.NewChangeTable(decoder.ChangeTableConfig{
			DBURL:        o.DBURL,
			Publication:  o.Publication,
			PollInterval: o.PollInterval,
			Retention:    o.Retention,
			Logger:       log,
			OnState:      onState,
			OnRelation:   onRelation,
		})
	}
	fctx, cancel := context.WithCancel(context.Background())
	f.source, f.cancel = src, cancel
	go func() {
		defer close(f.done)
		if err := src.Run(fctx, pg.Process); err != nil {
			log.Error("change source stopped", "err", err)
		}
	}()
	return f, nil
}

// authorizer adapts auth.Checker to channels.Authorizer and adds the
// publication's table list.
type authorizer struct {
	checker     *auth.Checker
	pool        *pgxpool.Pool
	publication string

	mu       sync.Mutex // guards tables, loadedAt
	tables   []channels.TableRef
	loadedAt time.Time
}

// classify maps checker errors onto the pipeline's: missing tables and
// roles are facts; lost connections and server shutdowns are transient.
func classify(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, auth.ErrNoTable):
		return fmt.Errorf("%w: %v", channels.ErrNoTable, err)
	case errors.Is(err, auth.ErrNoRole):
		return fmt.Errorf("%w: %v", channels.ErrNoRole, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), strings.HasPrefix(pgErr.Code, "57"), strings.HasPrefix(pgErr.Code, "53"):
			return fmt.Errorf("%w: %v", channels.ErrTransient, err)
		}
		return err // a policy or privilege error: deny, don't retry
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %v", channels.ErrTransient, err)
}

func (a *authorizer) Table(ctx context.Context, schema, table string) (*channels.TableInfo, error) {
	info, err := a.checker.Table(ctx, schema, table)
	if err != nil {
		return nil, classify(err)
	}
	out := &channels.TableInfo{Schema: info.Schema, Table: info.Table, RLS: info.RLS, PrimaryKey: info.PrimaryKey}
	for _, c := range info.Columns {
		out.Columns = append(out.Columns, channels.TableColumn{Name: c.Name, Type: c.Type})
	}
	return out, nil
}

func (a *authorizer) SelectableColumns(ctx context.Context, role, schema, table string) (map[string]bool, error) {
	cols, err := a.checker.SelectableColumns(ctx, role, schema, table)
	return cols, classify(err)
}

func (a *authorizer) Visible(ctx context.Context, id *channels.Identity, schema, table string, keys [][]string) ([]bool, error) {
	vis, err := a.checker.Visible(ctx, &auth.Claims{Role: id.Role, Sub: id.Sub, Raw: id.Claims}, schema, table, keys)
	return vis, classify(err)
}

func (a *authorizer) Invalidate(schema, table string) {
	a.checker.Invalidate(schema, table)
	a.mu.Lock()
	a.tables = nil
	a.mu.Unlock()
}

// PublishedTables lists the publication's tables, cached for a second so
// that a burst of joins costs one query.
func (a *authorizer) PublishedTables(ctx context.Context) ([]channels.TableRef, error) {
	a.mu.Lock()
	if a.tables != nil && time.Since(a.loadedAt) < time.Second {
		t := a.tables
		a.mu.Unlock()
		return t, nil
	}
	a.mu.Unlock()
	rows, err := a.pool.Query(ctx, "SELECT schemaname::text, tablename::text FROM pg_catalog.pg_publication_tables WHERE pubname = $1", a.publication)
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
	a.mu.Lock()
	a.tables, a.loadedAt = tables, time.Now()
	a.mu.Unlock()
	return tables, nil
}
