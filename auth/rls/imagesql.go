package rls

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/openrealtime/realtime/decoder"
)

// writeJob writes one group: role, claims, and the SELECT of the indices of
// visible images (docs/protocol.md §4.5). The images travel as one text
// array literal per column the policy reads, expanded by ROWS FROM (unnest
// ...) and cast to the column's type (its input function, exactly as for a
// stored value); columns it does not read, and absent values, are NULL. The
// row source is aliased with the table's name, so the policy expression
// reads it as it reads the table. One array literal per column keeps the
// statement's parse and plan cost independent of the number of rows (a
// VALUES list of literals costs ~17 µs per row to parse, for every group).
func writeJob(b *strings.Builder, j *sqlJob) error {
	ck, id := j.check, j.check.ID
	b.WriteString("SET LOCAL ROLE ")
	b.WriteString(pgx.Identifier{id.Role}.Sanitize())
	b.WriteString(";SELECT pg_catalog.set_config('request.jwt.claims',")
	if err := writeLiteral(b, string(id.Claims)); err != nil {
		return err
	}
	b.WriteString(",true),pg_catalog.set_config('request.jwt.claim.sub',")
	if err := writeLiteral(b, id.Sub); err != nil {
		return err
	}
	b.WriteString(",true),pg_catalog.set_config('request.jwt.claim.role',")
	if err := writeLiteral(b, id.Role); err != nil {
		return err
	}
	b.WriteString(",true);SELECT ")
	b.WriteString(ordCol)
	b.WriteString(" FROM ")
	if err := writeImageSource(b, j.e, j.ps, ck.Rel, j.rows, func(i int) []decoder.Value { return ck.Images[i] }); err != nil {
		return err
	}
	b.WriteString(" WHERE ")
	b.WriteString(j.ps.expr)
	b.WriteByte(';')
	return nil
}

// writeImageSource writes the row source of the images numbered ords
// (image(o) is the one numbered o), aliased with the table's name; see
// writeJob.
func writeImageSource(b *strings.Builder, e *tableEntry, ps *policySet, rel *decoder.Relation, ords []int, image func(int) []decoder.Value) error {
	b.WriteString("(SELECT ")
	b.WriteString(imagesAlias)
	b.WriteByte('.')
	b.WriteString(ordCol)
	cols := e.info.Columns
	var sent []int // indices into cols of the columns sent
	for k, col := range cols {
		name := pgx.Identifier{col.Name}.Sanitize()
		b.WriteByte(',')
		if ps.wholeRow || ps.reads[col.Name] {
			sent = append(sent, k)
			b.WriteString(imagesAlias)
			b.WriteByte('.')
			b.WriteString(name)
		} else {
			b.WriteString("NULL")
		}
		b.WriteString("::")
		b.WriteString(e.colCast[k])
		b.WriteString(" AS ")
		b.WriteString(name)
	}
	b.WriteString(" FROM ROWS FROM (pg_catalog.unnest('{")
	for n, o := range ords {
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(o))
	}
	b.WriteString("}'::pg_catalog.int4[])")
	var arr strings.Builder
	for _, k := range sent {
		x := rel.ColumnIndex(cols[k].Name)
		arr.Reset()
		arr.WriteByte('{')
		for n, o := range ords {
			if n > 0 {
				arr.WriteByte(',')
			}
			img := image(o)
			if x < 0 || x >= len(img) || img[x].Absent || img[x].Null {
				arr.WriteString("NULL")
			} else {
				writeArrayElem(&arr, img[x].Text)
			}
		}
		arr.WriteByte('}')
		b.WriteString(",pg_catalog.unnest(")
		if err := writeLiteral(b, arr.String()); err != nil {
			return err
		}
		b.WriteString("::pg_catalog.text[])")
	}
	b.WriteString(") AS ")
	b.WriteString(imagesAlias)
	b.WriteByte('(')
	b.WriteString(ordCol)
	for _, k := range sent {
		b.WriteByte(',')
		b.WriteString(pgx.Identifier{cols[k].Name}.Sanitize())
	}
	b.WriteString(")) AS ")
	b.WriteString(pgx.Identifier{rel.Table}.Sanitize())
	return nil
}

// imagesAlias names the unnested arrays inside the row source.
const imagesAlias = "_realtime_images"

// writeArrayElem writes s as a double-quoted element of an array literal:
// backslash and double quote escaped with a backslash.
func writeArrayElem(b *strings.Builder, s string) {
	b.WriteByte('"')
	for {
		i := strings.IndexAny(s, `"\`)
		if i < 0 {
			break
		}
		b.WriteString(s[:i])
		b.WriteByte('\\')
		b.WriteByte(s[i])
		s = s[i+1:]
	}
	b.WriteString(s)
	b.WriteByte('"')
}

// wholeRowRef reports whether expr may refer to table's whole row: its name,
// bare or quoted, not followed by '.' and a column name (a column reference
// qualified with the table's name). It may say yes when it does not.
func wholeRowRef(expr, table string) bool {
	for _, n := range []string{regexp.QuoteMeta(pgx.Identifier{table}.Sanitize()), regexp.QuoteMeta(table)} {
		re := regexp.MustCompile(`(^|[^A-Za-z0-9_$"])` + n + `($|\.\*|[^A-Za-z0-9_$."])`)
		if re.MatchString(expr) {
			return true
		}
	}
	return false
}
