package channels

import (
	"context"
	"errors"

	"github.com/openrealtime/realtime/decoder"
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
	// SelectableColumns returns the columns role may SELECT. Under a
	// [FreshContext] the answer must not predate the call.
	SelectableColumns(ctx context.Context, role, schema, table string) (map[string]bool, error)
	// CheckRows answers every row check of a batch (docs/protocol.md §4.5):
	// for each check, whether its identity may see each row image under the
	// table's row level security, judged on the image as committed, never
	// on the live row. It fills in each check's Visible, or its Err when that
	// group is denied as a whole (bad claims, a missing role, a policy that
	// raises). The returned error is transient (wraps [ErrTransient]) or the
	// context's: the batch is retried.
	CheckRows(ctx context.Context, checks []*RowCheck) error
	// PublishedTables lists the tables of the publication.
	PublishedTables(ctx context.Context) ([]TableRef, error)
	// Invalidate forgets cached facts about schema.table (after DDL),
	// including the cached list of published tables.
	Invalidate(schema, table string)
}

// RowCheck is one question of [Authorizer.CheckRows]: which of Images, row
// images of Rel aligned with Rel.Columns, may ID see.
type RowCheck struct {
	// ID is the identity the rows are checked for.
	ID *Identity
	// Rel is the table the images belong to.
	Rel *decoder.Relation
	// Images are the committed rows: the new tuple of an INSERT or UPDATE,
	// the old tuple of a DELETE on a REPLICA IDENTITY FULL table.
	Images [][]decoder.Value
	// Visible is the answer, one per image; set by CheckRows unless Err.
	Visible []bool
	// Err, set by CheckRows, denies the whole group for a reason retrying
	// does not cure.
	Err error
}

// freshKey marks a context whose lookups must not be answered from a
// cache older than the call.
type freshKey struct{}

// FreshContext returns ctx marked so that Authorizer lookups made with it
// reflect the catalog as of the call (a join must see a REVOKE made just
// before it); concurrent fresh lookups may still share one query.
func FreshContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, freshKey{}, true)
}

// IsFresh reports whether ctx was made by [FreshContext].
func IsFresh(ctx context.Context) bool {
	v, _ := ctx.Value(freshKey{}).(bool)
	return v
}
