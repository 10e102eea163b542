package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// A server that is starting up answers the connection with a FATAL error
// (57P03): the schema is retried, not given up (TestRealtimeSchemaDatabaseLate
// once lost that race).
func TestSchemaRefused(t *testing.T) {
	cases := map[error]bool{
		&pgconn.PgError{Code: "42501"}:                            true,  // insufficient privilege
		fmt.Errorf("migrate: %w", &pgconn.PgError{Code: "42P07"}): true,  // duplicate table
		&pgconn.PgError{Code: "57P03"}:                            false, // cannot connect now
		&pgconn.PgError{Code: "53300"}:                            false, // too many connections
		&pgconn.PgError{Code: "08006"}:                            false, // connection failure
		errors.New("dial tcp: connection refused"):                false,
		&pgconn.ConnectError{Config: &pgconn.Config{}}:            false,
	}
	for err, want := range cases {
		if got := schemaRefused(err); got != want {
			t.Errorf("schemaRefused(%v) = %v, want %v", err, got, want)
		}
	}
}
