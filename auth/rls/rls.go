package rls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// rollbackTimeout bounds the ROLLBACK sent after a failed batch, which runs even
// when the caller's context has ended.
const rollbackTimeout = 5 * time.Second

// runBatch sends sql as one simple-protocol Query on a pooled connection and
// reads every result. On failure it also returns the results read (the
// failing statement's with its Err), and makes sure the connection goes
// back to the pool idle, outside any transaction, or not at all.
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
		return results, err
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
