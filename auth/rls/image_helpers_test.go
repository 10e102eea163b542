package rls

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/decoder"
)

// visibleByKey judges, for id, the images of the rows of schema.table whose
// primary key is keys[i] as they are stored now (read as the superuser, in
// pgoutput's text form); a key without a row gives an image holding only the
// key. It is how the tests written for key lookups ask CheckRows.
func visibleByKey(ctx context.Context, c *Checker, id *channels.Identity, schema, table string, keys [][]string) ([]bool, error) {
	info, err := c.Table(ctx, schema, table)
	if err != nil {
		return nil, err
	}
	if len(info.PrimaryKey) == 0 {
		return nil, fmt.Errorf("visibleByKey %s.%s: %w", schema, table, ErrNoPrimaryKey)
	}
	rel := relationOf(info)
	images := make([][]decoder.Value, len(keys))
	for i, k := range keys {
		if len(k) != len(info.PrimaryKey) {
			return nil, fmt.Errorf("key %d has %d values, primary key has %d columns", i, len(k), len(info.PrimaryKey))
		}
		img, err := liveImage(ctx, c, info, k)
		if err != nil {
			return nil, err
		}
		images[i] = img
	}
	ck := &channels.RowCheck{ID: id, Rel: rel, Images: images}
	if err := c.CheckRows(ctx, []*channels.RowCheck{ck}); err != nil {
		return nil, err
	}
	return ck.Visible, ck.Err
}

// relationOf builds the decoder's view of a table from its catalog facts.
func relationOf(info *channels.TableInfo) *decoder.Relation {
	rel := &decoder.Relation{Schema: info.Schema, Table: info.Table, ReplicaIdentity: 'd'}
	for _, col := range info.Columns {
		rel.Columns = append(rel.Columns, decoder.Column{Name: col.Name, Type: col.Type})
	}
	return rel
}

// liveImage reads one stored row as text, or returns an image with only
// the key when there is none.
func liveImage(ctx context.Context, c *Checker, info *channels.TableInfo, key []string) ([]decoder.Value, error) {
	var sel, where []string
	args := []any{}
	for _, col := range info.Columns {
		sel = append(sel, pgx.Identifier{col.Name}.Sanitize()+"::text")
	}
	for j, col := range info.PrimaryKey {
		args = append(args, key[j])
		where = append(where, fmt.Sprintf("%s::text = $%d", pgx.Identifier{col}.Sanitize(), j+1))
	}
	q := "SELECT " + strings.Join(sel, ",") + " FROM " + pgx.Identifier{info.Schema, info.Table}.Sanitize() + " WHERE " + strings.Join(where, " AND ")
	vals := make([]*string, len(info.Columns))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	img := make([]decoder.Value, len(info.Columns))
	err := c.pool.QueryRow(ctx, q, args...).Scan(ptrs...)
	if err == pgx.ErrNoRows {
		for i, col := range info.Columns {
			img[i] = decoder.Value{Null: true}
			for j, k := range info.PrimaryKey {
				if k == col.Name {
					img[i] = decoder.Value{Text: key[j]}
				}
			}
		}
		return img, nil
	}
	if err != nil {
		return nil, err
	}
	for i, v := range vals {
		if v == nil {
			img[i] = decoder.Value{Null: true}
		} else {
			img[i] = decoder.Value{Text: *v}
		}
	}
	return img, nil
}
