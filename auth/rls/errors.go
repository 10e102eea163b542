package rls

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/openrealtime/realtime/channels"
)

// classify sorts an error of the Checker for the postgres_changes pipeline
// (see [Checker]): missing tables and roles are facts (already wrapping
// channels.ErrNoTable or channels.ErrNoRole), policy and privilege errors
// deny, and lost connections, server shutdowns and anything that is not a
// PostgreSQL error are transient, so the batch is retried.
func classify(err error) error {
	if err == nil || errors.Is(err, channels.ErrNoTable) || errors.Is(err, channels.ErrNoRole) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), strings.HasPrefix(pgErr.Code, "57"), strings.HasPrefix(pgErr.Code, "53"):
			return fmt.Errorf("%w: %w", channels.ErrTransient, err)
		}
		return err // a policy or privilege error: deny, don't retry
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", channels.ErrTransient, err)
}
