package rls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/decoder"
)

// The live-row fallback (docs/protocol.md §4.5). An UPDATE's new image
// lacks the TOASTed values it did not change (absent), and without REPLICA
// IDENTITY FULL no old image fills them. When a policy reads such a column,
// and only then, the value is read from the live row by primary key, after
// the batch's commits are visible ([decoder.AwaitVisible]). It is the one
// case where a decision depends on the row as it is now: a later
// transaction that changed the column wins, one that deleted the row leaves
// the value NULL.

// liveNeed is one image that needs live values.
type liveNeed struct {
	check *channels.RowCheck
	image int
}

// fillLive replaces, in each check, the images whose absent columns the
// check's policy reads with copies holding the live values (the Change
// values themselves are never modified). Lookup failures of a group are
// left to prepare, which reports them; a failed live read leaves the values
// absent (judged as NULL) and is logged. Only a transient error or the
// context's is returned.
func (c *Checker) fillLive(ctx context.Context, checks []*channels.RowCheck) error {
	byTable := map[*tableEntry][]liveNeed{}
	var order []*tableEntry
	for _, ck := range checks {
		if ck.ID == nil || ck.Rel == nil || checkIdentity(ck.ID) != nil {
			continue
		}
		var e *tableEntry
		var ps *policySet
		for i, img := range ck.Images {
			if !hasAbsent(img) {
				continue
			}
			if e == nil {
				var err error
				if e, err = c.table(ctx, ck.Rel.Schema, ck.Rel.Table); err != nil || !e.info.RLS {
					break
				}
				if ps, err = c.policies(ctx, e, ck.ID.Role); err != nil || ps.mode != policyExpr {
					break
				}
			}
			if readsAbsent(ck.Rel, ps, img) && len(e.info.PrimaryKey) > 0 {
				if _, ok := byTable[e]; !ok {
					order = append(order, e)
				}
				byTable[e] = append(byTable[e], liveNeed{ck, i})
			}
		}
	}
	if len(order) == 0 {
		return nil
	}
	if err := decoder.AwaitVisible(ctx); err != nil {
		return fmt.Errorf("%w: rls: live-row fallback: %w", channels.ErrTransient, err)
	}
	for _, e := range order {
		if err := c.readLive(ctx, e, byTable[e]); err != nil {
			if cerr := classify(err); isTransient(cerr) {
				return cerr
			}
			c.log.LogAttrs(ctx, slog.LevelWarn, "rls: live-row fallback failed; absent values judged as NULL",
				slog.String("table", e.info.Schema+"."+e.info.Table), slog.String("err", err.Error()))
		}
	}
	return nil
}

// isTransient reports whether err is transient or the context's.
func isTransient(err error) bool {
	return errors.Is(err, channels.ErrTransient) || isContextErr(err)
}

// hasAbsent reports whether img lacks a value.
func hasAbsent(img []decoder.Value) bool {
	for i := range img {
		if img[i].Absent {
			return true
		}
	}
	return false
}

// readsAbsent reports whether ps reads a column absent from img.
func readsAbsent(rel *decoder.Relation, ps *policySet, img []decoder.Value) bool {
	for i := range img {
		if img[i].Absent && i < len(rel.Columns) && ps.reads[rel.Columns[i].Name] {
			return true
		}
	}
	return false
}

// readLive reads, in one statement as the service's own role, the live
// values of the rows needs name by primary key and fills the absent values
// of copies of their images.
func (c *Checker) readLive(ctx context.Context, e *tableEntry, needs []liveNeed) error {
	info := e.info
	var b strings.Builder
	b.WriteString("SELECT k.")
	b.WriteString(ordCol)
	for _, col := range info.Columns {
		b.WriteString(",t.")
		b.WriteString(pgx.Identifier{col.Name}.Sanitize())
		b.WriteString("::text")
	}
	b.WriteString(" FROM ")
	b.WriteString(pgx.Identifier{info.Schema, info.Table}.Sanitize())
	b.WriteString(" t JOIN (VALUES ")
	rows := 0
	for n, need := range needs {
		img, rel := need.check.Images[need.image], need.check.Rel
		key := make([]string, len(info.PrimaryKey))
		ok := true
		for j, name := range info.PrimaryKey {
			x := rel.ColumnIndex(name)
			if x < 0 || x >= len(img) || img[x].Absent || img[x].Null {
				ok = false
				break
			}
			key[j] = img[x].Text
		}
		if !ok {
			continue
		}
		if rows > 0 {
			b.WriteByte(',')
		}
		rows++
		b.WriteByte('(')
		b.WriteString(strconv.Itoa(n))
		for j, k := range key {
			b.WriteByte(',')
			if err := writeLiteral(&b, k); err != nil {
				return err
			}
			b.WriteString("::")
			b.WriteString(e.pkCast[j])
		}
		b.WriteByte(')')
	}
	if rows == 0 {
		return nil
	}
	b.WriteString(") AS k(")
	b.WriteString(ordCol)
	for j := range info.PrimaryKey {
		b.WriteString(",k")
		b.WriteString(strconv.Itoa(j))
	}
	b.WriteString(") ON ")
	for j, name := range info.PrimaryKey {
		if j > 0 {
			b.WriteString(" AND ")
		}
		b.WriteString("t.")
		b.WriteString(pgx.Identifier{name}.Sanitize())
		b.WriteString(" = k.k")
		b.WriteString(strconv.Itoa(j))
	}
	results, err := c.runBatch(ctx, b.String())
	if err != nil {
		return fmt.Errorf("rls: live values of %q.%q: %w", info.Schema, info.Table, err)
	}
	c.stats.liveReads.Add(1)
	for _, r := range results {
		for _, row := range r.Rows {
			n, err := strconv.Atoi(string(row[0]))
			if err != nil || n < 0 || n >= len(needs) {
				return fmt.Errorf("rls: live values of %q.%q: bad row index %q", info.Schema, info.Table, row[0])
			}
			need := needs[n]
			rel := need.check.Rel
			img := append([]decoder.Value(nil), need.check.Images[need.image]...)
			for k, col := range info.Columns {
				x := rel.ColumnIndex(col.Name)
				if x < 0 || x >= len(img) || !img[x].Absent {
					continue
				}
				if row[1+k] == nil {
					img[x] = decoder.Value{Null: true}
				} else {
					img[x] = decoder.Value{Text: string(row[1+k])}
				}
			}
			need.check.Images[need.image] = img
		}
	}
	return nil
}
