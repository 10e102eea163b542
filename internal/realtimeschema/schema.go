// Package realtimeschema creates and upgrades the `realtime` schema objects
// of Supabase Realtime Authorization and Broadcast from the database:
// realtime.messages (partitioned by day), realtime.topic(), realtime.send(),
// realtime.send_binary() and realtime.broadcast_changes() (docs/protocol.md
// §9). Migrations are versioned in realtime.server_migrations and applied
// under an advisory lock, so several servers may start at once; each is
// idempotent, so a database prepared by Supabase's own server is accepted.
package realtimeschema

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

//go:embed v1.sql
var v1SQL string

//go:embed v2.sql
var v2SQL string

//go:embed grants.sql
var grantsSQL string

// migration is one versioned schema step.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations are applied in order; a released one is never edited, a
// change is a new version.
var migrations = []migration{
	{1, "messages, topic, send, send_binary, broadcast_changes", v1SQL},
	{2, "persisted client broadcasts: expires_at, origin", v2SQL},
}

// Publication is the publication through which the change source (logical
// slot or change table) delivers realtime.messages (the name Supabase uses).
const Publication = "supabase_realtime_messages_publication"

// lockKey is the advisory lock serializing migrations across servers.
const lockKey = 0x7265616c74696d65 // "realtime"

// Execer is what the package needs of a connection or pool.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Options tunes Migrate.
type Options struct {
	// Publication, when true, creates the publication streaming
	// realtime.messages.
	Publication bool
	// Now is the clock for partition maintenance (default time.Now).
	Now func() time.Time
	// Retention is how long old day partitions are kept (default 3 days).
	Retention time.Duration
}

// Migrate applies the pending migrations, the grants, the publication (if
// asked) and partition maintenance. It is safe to run at every start.
func Migrate(ctx context.Context, db Execer, o Options) (applied []int, err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("realtimeschema: begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", lockKey)); err != nil {
		return nil, fmt.Errorf("realtimeschema: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS realtime;
CREATE TABLE IF NOT EXISTS realtime.server_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("realtimeschema: migration table: %w", err)
	}
	var current int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM realtime.server_migrations").Scan(&current); err != nil {
		return nil, fmt.Errorf("realtimeschema: read version: %w", err)
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return nil, fmt.Errorf("realtimeschema: migration %d (%s): %w", m.version, m.name, err)
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("INSERT INTO realtime.server_migrations (version, name) VALUES (%d, %s)", m.version, quote(m.name))); err != nil {
			return nil, fmt.Errorf("realtimeschema: record migration %d: %w", m.version, err)
		}
		applied = append(applied, m.version)
	}
	if _, err := tx.Exec(ctx, grantsSQL); err != nil {
		return nil, fmt.Errorf("realtimeschema: grants: %w", err)
	}
	if o.Publication {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = '"+Publication+"')").Scan(&exists); err != nil {
			return nil, fmt.Errorf("realtimeschema: look up publication: %w", err)
		}
		if !exists {
			if _, err := tx.Exec(ctx, "CREATE PUBLICATION "+Publication+" FOR TABLE realtime.messages"); err != nil {
				return nil, fmt.Errorf("realtimeschema: create publication: %w", err)
			}
		}
	}
	if err := maintainLocked(ctx, tx, o); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("realtimeschema: commit: %w", err)
	}
	return applied, nil
}

// Maintain creates the day partitions from yesterday to today+3 (UTC) and
// drops those older than the retention.
func Maintain(ctx context.Context, db Execer, o Options) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("realtimeschema: begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", lockKey)); err != nil {
		return fmt.Errorf("realtimeschema: lock: %w", err)
	}
	if err := maintainLocked(ctx, tx, o); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("realtimeschema: commit: %w", err)
	}
	return nil
}

// PartitionName is the name of the day partition holding t (UTC).
func PartitionName(t time.Time) string {
	return "messages_" + t.UTC().Format("2006_01_02")
}

// maintainLocked does Maintain's work inside tx, which holds the lock.
func maintainLocked(ctx context.Context, tx pgx.Tx, o Options) error {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	retention := o.Retention
	if retention <= 0 {
		retention = 72 * time.Hour
	}
	today := now().UTC().Truncate(24 * time.Hour)
	for d := -1; d <= 3; d++ {
		day := today.AddDate(0, 0, d)
		sql := fmt.Sprintf("CREATE TABLE IF NOT EXISTS realtime.%s PARTITION OF realtime.messages FOR VALUES FROM ('%s') TO ('%s')",
			PartitionName(day), day.Format("2006-01-02"), day.AddDate(0, 0, 1).Format("2006-01-02"))
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("realtimeschema: create partition %s: %w", PartitionName(day), err)
		}
	}
	// Drop every day partition whose day ended before now - retention.
	cutoff := now().UTC().Add(-retention).Truncate(24 * time.Hour)
	rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_catalog.pg_inherits i
JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'realtime.messages'::regclass AND c.relname ~ '^messages_[0-9]{4}_[0-9]{2}_[0-9]{2}$'`)
	if err != nil {
		return fmt.Errorf("realtimeschema: list partitions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("realtimeschema: list partitions: %w", err)
	}
	for _, n := range names {
		day, err := time.Parse("2006_01_02", strings.TrimPrefix(n, "messages_"))
		if err != nil || !day.Before(cutoff) {
			continue
		}
		if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS realtime."+n); err != nil {
			return fmt.Errorf("realtimeschema: drop partition %s: %w", n, err)
		}
	}
	return nil
}

// quote is a SQL string literal of s.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
