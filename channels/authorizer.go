package channels

import (
	"context"
	"errors"
)

// TableInfo describes a table for postgres_changes: its columns, primary
// key and whether row level security is on.
type TableInfo struct {
	// Schema and Table name the table.
	Schema, Table string
	// RLS reports relrowsecurity.
	RLS bool
	// PrimaryKey lists the primary-key columns in key order (empty: none).
	PrimaryKey []string
	// Columns are the table's columns in attnum order.
	Columns []TableColumn
}

// TableColumn is one column of a TableInfo.
type TableColumn struct {
	// Name is the column name.
	Name string
	// Type is pg_type.typname.
	Type string
}

// TableRef names a table.
type TableRef struct {
	// Schema and Table name the table.
	Schema, Table string
}

// Errors an Authorizer returns (wrapped) so the pipeline can tell facts from
// outages.
var (
	// ErrNoTable means the table does not exist.
	ErrNoTable = errors.New("table does not exist")
	// ErrNoRole means the role does not exist.
	ErrNoRole = errors.New("role does not exist")
	// ErrTransient means the database could not answer right now
	// (connection lost, server restarting); the batch is retried.
	ErrTransient = errors.New("database temporarily unavailable")
)

// Authorizer answers the database questions of postgres_changes delivery.
// Implementations must be safe for concurrent use and should cache; the
// pipeline calls them once per (identity group, table, batch), never per
// subscriber.
type Authorizer interface {
	// Table describes schema.table (cached by the implementation).
	Table(ctx context.Context, schema, table string) (*TableInfo, error)
	// SelectableColumns returns the columns role may SELECT.
	SelectableColumns(ctx context.Context, role, schema, table string) (map[string]bool, error)
	// Visible reports, for each row given by its primary-key values (text
	// form, PrimaryKey order), whether id may SELECT it under RLS. An error
	// means the whole group is denied for this call.
	Visible(ctx context.Context, id *Identity, schema, table string, keys [][]string) ([]bool, error)
	// PublishedTables lists the tables of the publication.
	PublishedTables(ctx context.Context) ([]TableRef, error)
	// Invalidate forgets cached facts about schema.table (after DDL),
	// including the cached list of published tables.
	Invalidate(schema, table string)
}
