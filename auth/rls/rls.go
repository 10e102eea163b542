package rls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openrealtime/realtime/channels"
)

// visibleChunk is the most rows one SELECT of a [Checker.Visible] batch looks
// up; longer key lists get several SELECTs in the same batch.
const visibleChunk = 1000

// rollbackTimeout bounds the ROLLBACK sent after a failed batch, which runs even
// when the caller's context has ended.
const rollbackTimeout = 5 * time.Second

// Visible reports which rows of schema.table the role named by id.Role, with
// request.jwt.claims (and request.jwt.claim.sub, request.jwt.claim.role) set
// from id (id.Claims, id.Sub, id.Role), may SELECT. keys[i] holds the text
// forms of row i's primary-key values in [channels.TableInfo.PrimaryKey]
// order; the result has one bool per key, owned by the caller.
//
// Each row is looked up by primary key in the table as it is now, under the
// table's policies (callers skip DELETEs, which cannot be checked). All keys
// are answered in one round trip (plus a catalog query when [Checker.Table] is
// not cached): a single simple-protocol message that opens a transaction,
// switches role and claims with SET LOCAL/set_config(..., true), runs one
// SELECT per 1000 keys and commits, so nothing outlives it on the session
// (PGlite shares one session between all sockets). Call it once per distinct
// identity ([channels.Identity.Key]) and table, not once per subscriber.
//
// A table without row level security is not queried: every row is visible (as
// in the real server; column privileges are the caller's business, see
// [Checker.SelectableColumns]). Errors, classified as described at [Checker]:
// [channels.ErrNoTable], [channels.ErrNoRole], [ErrNoPrimaryKey], a key of
// the wrong length or holding NUL or invalid UTF-8, or the batch failing (a
// policy raising, a missing role, no SELECT privilege on a key column, ...).
// A failed batch is rolled back on its connection (or the connection is
// discarded), and the caller should treat the whole group as denied. Blocks
// for a pool connection and one round trip; safe for concurrent use.
func (c *Checker) Visible(ctx context.Context, id *channels.Identity, schema, table string, keys [][]string) ([]bool, error) {
	vis, err := c.visible(ctx, id, schema, table, keys)
	return vis, classify(err)
}

func (c *Checker) visible(ctx context.Context, claims *channels.Identity, schema, table string, keys [][]string) ([]bool, error) {
	if claims == nil {
		return nil, fmt.Errorf("rls: visible %q.%q: nil identity", schema, table)
	}
	e, err := c.table(ctx, schema, table)
	if err != nil {
		return nil, err
	}
	pk := e.info.PrimaryKey
	if len(pk) == 0 {
		return nil, fmt.Errorf("rls: visible %q.%q: %w", schema, table, ErrNoPrimaryKey)
	}
	for i, k := range keys {
		if len(k) != len(pk) {
			return nil, fmt.Errorf("rls: visible %q.%q: key %d has %d values, primary key has %d columns", schema, table, i, len(k), len(pk))
		}
	}
	visible := make([]bool, len(keys))
	if len(keys) == 0 {
		return visible, nil
	}
	if !e.info.RLS {
		for i := range visible {
			visible[i] = true
		}
		return visible, nil
	}
	if !validName(claims.Role) {
		return nil, fmt.Errorf("rls: visible %q.%q as role %q: %w", schema, table, claims.Role, channels.ErrNoRole)
	}
	sql, err := visibleSQL(claims, e, keys)
	if err != nil {
		return nil, fmt.Errorf("rls: visible %q.%q as role %q: %w", schema, table, claims.Role, err)
	}
	results, err := c.runBatch(ctx, sql)
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelDebug, "rls check failed",
			slog.String("schema", schema), slog.String("table", table),
			slog.String("role", claims.Role), slog.Any("err", err))
		return nil, fmt.Errorf("rls: visible %q.%q as role %q: %w", schema, table, claims.Role, err)
	}
	chunks := (len(keys) + visibleChunk - 1) / visibleChunk
	// BEGIN, SET LOCAL ROLE, set_config, the chunks, COMMIT.
	if len(results) != chunks+4 {
		return nil, fmt.Errorf("rls: visible %q.%q as role %q: got %d results, want %d", schema, table, claims.Role, len(results), chunks+4)
	}
	for _, r := range results[3 : 3+chunks] {
		for _, row := range r.Rows {
			if len(row) != 1 {
				return nil, fmt.Errorf("rls: visible %q.%q: row with %d columns", schema, table, len(row))
			}
			i, err := strconv.Atoi(string(row[0]))
			if err != nil || i < 0 || i >= len(visible) {
				return nil, fmt.Errorf("rls: visible %q.%q: bad row index %q", schema, table, row[0])
			}
			visible[i] = true
		}
	}
	return visible, nil
}

// runBatch sends sql as one simple-protocol Query on a pooled connection and
// reads every result. On failure it makes sure the connection goes back to the
// pool idle, outside any transaction, or not at all.
func (c *Checker) runBatch(ctx context.Context, sql string) ([]*pgconn.Result, error) {
	conn, err := c.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release() // destroys the connection unless it is idle and open
	pg := conn.Conn().PgConn()
	// Literals are escaped by doubling quotes only; that is safe exactly when
	// backslashes are ordinary characters and the client speaks UTF-8.
	if pg.ParameterStatus("standard_conforming_strings") != "on" || pg.ParameterStatus("client_encoding") != "UTF8" {
		return nil, errors.New("connection needs standard_conforming_strings=on and client_encoding=UTF8")
	}
	results, err := pg.Exec(ctx, sql).ReadAll()
	if err == nil {
		for _, r := range results {
			if r.Err != nil {
				err = r.Err
				break
			}
		}
	}
	if err == nil && pg.TxStatus() != 'I' {
		err = fmt.Errorf("transaction left open (status %q)", pg.TxStatus())
	}
	if err != nil {
		c.resetConn(ctx, conn)
		return nil, err
	}
	return results, nil
}

// resetConn ends a transaction a failed batch left behind, so the role and
// claims cannot leak to the next user of the session, and closes the
// connection if that fails (Release then drops it from the pool).
func (c *Checker) resetConn(ctx context.Context, conn *pgxpool.Conn) {
	pg := conn.Conn().PgConn()
	if pg.IsClosed() || pg.TxStatus() == 'I' {
		return
	}
	// The caller's ctx may be what ended the batch; the ROLLBACK must still go out.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	_, err := pg.Exec(rctx, "ROLLBACK").ReadAll()
	if err == nil && pg.TxStatus() == 'I' {
		return
	}
	c.log.LogAttrs(ctx, slog.LevelWarn, "rls check: rollback failed, closing connection",
		slog.String("tx_status", string(pg.TxStatus())), slog.Any("err", err))
	pg.Close(rctx)
}

// visibleSQL builds the whole Visible batch for keys (already checked to have
// one value per primary-key column).
func visibleSQL(claims *channels.Identity, e *tableEntry, keys [][]string) (string, error) {
	var b strings.Builder
	b.Grow(256 + len(claims.Claims) + len(keys)*(16+24*len(e.pkCast)))
	b.WriteString("BEGIN;SET LOCAL ROLE ")
	b.WriteString(pgx.Identifier{claims.Role}.Sanitize())
	b.WriteString(";SELECT pg_catalog.set_config('request.jwt.claims',")
	if err := writeLiteral(&b, string(claims.Claims)); err != nil {
		return "", fmt.Errorf("claims: %w", err)
	}
	b.WriteString(",true),pg_catalog.set_config('request.jwt.claim.sub',")
	if err := writeLiteral(&b, claims.Sub); err != nil {
		return "", fmt.Errorf("sub claim: %w", err)
	}
	b.WriteString(",true),pg_catalog.set_config('request.jwt.claim.role',")
	if err := writeLiteral(&b, claims.Role); err != nil {
		return "", fmt.Errorf("role claim: %w", err)
	}
	b.WriteString(",true);")

	// The tail of every SELECT: column aliases and the lookup by primary key.
	var tail strings.Builder
	tail.WriteString(") AS k(ord")
	for j := range e.pkCast {
		tail.WriteString(",c")
		tail.WriteString(strconv.Itoa(j))
	}
	tail.WriteString(") WHERE EXISTS (SELECT 1 FROM ")
	tail.WriteString(pgx.Identifier{e.info.Schema, e.info.Table}.Sanitize())
	tail.WriteString(" t WHERE ")
	for j, col := range e.info.PrimaryKey {
		if j > 0 {
			tail.WriteString(" AND ")
		}
		tail.WriteString("t.")
		tail.WriteString(pgx.Identifier{col}.Sanitize())
		tail.WriteString("=k.c")
		tail.WriteString(strconv.Itoa(j))
	}
	if e.indexProbe {
		// OFFSET 0 keeps the EXISTS a per-key subplan, one primary-key index
		// probe per key, so the cost follows the number of keys, not the size
		// of the table. Left to itself the planner often hashes the whole table
		// (evaluating the policy on every row) for a few hundred keys.
		tail.WriteString(" OFFSET 0")
	}
	tail.WriteString(");")

	for start := 0; start < len(keys); start += visibleChunk {
		end := min(start+visibleChunk, len(keys))
		b.WriteString("SELECT k.ord FROM (VALUES ")
		for i := start; i < end; i++ {
			if i > start {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			b.WriteString(strconv.Itoa(i))
			for j, v := range keys[i] {
				b.WriteByte(',')
				if err := writeLiteral(&b, v); err != nil {
					return "", fmt.Errorf("key %d column %q: %w", i, e.info.PrimaryKey[j], err)
				}
				b.WriteString("::")
				b.WriteString(e.pkCast[j])
			}
			b.WriteByte(')')
		}
		b.WriteString(tail.String())
	}
	b.WriteString("COMMIT")
	return b.String(), nil
}

// writeLiteral writes s as a standard SQL string literal ('...' with quotes
// doubled), which is exact when standard_conforming_strings is on. PostgreSQL
// text cannot hold NUL, and the server rejects invalid UTF-8, so both are
// refused here rather than failing the batch.
func writeLiteral(b *strings.Builder, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("value contains a NUL byte")
	}
	if !utf8.ValidString(s) {
		return errors.New("value is not valid UTF-8")
	}
	b.WriteByte('\'')
	for {
		i := strings.IndexByte(s, '\'')
		if i < 0 {
			break
		}
		b.WriteString(s[:i+1])
		b.WriteByte('\'')
		s = s[i+1:]
	}
	b.WriteString(s)
	b.WriteByte('\'')
	return nil
}
