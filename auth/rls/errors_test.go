package rls

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/openrealtime/realtime/channels"
)

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		name      string
		err       error
		transient bool
		is        error // must still match
	}{
		{"nil", nil, false, nil},
		{"missing table", fmt.Errorf("rls: table: %w", channels.ErrNoTable), false, channels.ErrNoTable},
		{"missing role", fmt.Errorf("rls: cols: %w", channels.ErrNoRole), false, channels.ErrNoRole},
		{"connection lost", &pgconn.PgError{Code: "08006"}, true, nil},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true, nil},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true, nil},
		{"policy raised", &pgconn.PgError{Code: "P0001"}, false, nil},
		{"no privilege", &pgconn.PgError{Code: "42501"}, false, nil},
		{"canceled", fmt.Errorf("rls: visible: %w", context.Canceled), false, context.Canceled},
		{"network", fmt.Errorf("rls: visible: %w", io.ErrUnexpectedEOF), true, io.ErrUnexpectedEOF},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.err)
			if (tt.err == nil) != (got == nil) {
				t.Fatalf("classify(%v) = %v", tt.err, got)
			}
			if errors.Is(got, channels.ErrTransient) != tt.transient {
				t.Errorf("classify(%v) = %v; transient %v, want %v", tt.err, got, !tt.transient, tt.transient)
			}
			if tt.is != nil && !errors.Is(got, tt.is) {
				t.Errorf("classify(%v) = %v; does not match %v", tt.err, got, tt.is)
			}
		})
	}
}
