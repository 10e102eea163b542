package policy

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// imageCache holds what image read probes need from the catalog
// (docs/protocol.md §9.2 "Image read probes"), valid while the catalog
// fingerprint stays the same. States are never modified once published:
// a batch reads the one it got without a lock.
type imageCache struct {
	mu sync.Mutex // serializes loads and guards st
	st *imageState
}

// maxImageRoles bounds the roles one state keeps plans for.
const maxImageRoles = 1024

// imageState is the catalog as of one fingerprint.
type imageState struct {
	fp string
	// usable is false when no probe may be imaged (user triggers on the
	// table, partitions whose bounds cannot be read): every probe then
	// takes the insert path.
	usable bool
	cols   []messageColumn
	parts  partitionSet
	// roles holds the plans of the roles seen so far.
	roles map[string]*rolePlan
}

// rolePlan is how one role's read probes are judged.
type rolePlan struct {
	// insert sends the role's probes to the insert path: its policies
	// read realtime.messages itself or its whole row, or a column whose
	// stored value an image cannot reproduce.
	insert bool
	// one and two are the image statements without and with the presence
	// row.
	one, two string
}

// plans returns the state holding a plan for every role of roles, loading
// what is missing on c.
func (ic *imageCache) plans(ctx context.Context, c *pgxpool.Conn, roles []string) (*imageState, error) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	st := ic.st
	if st != nil && hasRoles(st, roles) {
		return st, nil
	}
	tx, err := c.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, classify("begin image catalog read", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET LOCAL search_path = ''; SET LOCAL datestyle = 'ISO, YMD'"); err != nil {
		return nil, classify("image catalog settings", err)
	}
	var fp string
	if err := tx.QueryRow(ctx, fingerprintSQL).Scan(&fp); err != nil {
		return nil, classify("catalog fingerprint", err)
	}
	next := &imageState{fp: fp, roles: map[string]*rolePlan{}}
	if st != nil && st.fp == fp && len(st.roles) < maxImageRoles {
		*next = *st
		next.roles = make(map[string]*rolePlan, len(st.roles)+len(roles))
		for k, v := range st.roles {
			next.roles[k] = v
		}
	} else if st != nil && st.fp == fp {
		// Too many roles seen (tokens may name any role): start over
		// with the batch's own.
		next.usable, next.cols, next.parts = st.usable, st.cols, st.parts
	} else if err := loadTable(ctx, tx, next); err != nil {
		return nil, err
	}
	for _, r := range roles {
		if next.roles[r] != nil {
			continue
		}
		plan, err := loadRole(ctx, tx, next.cols, r)
		if err != nil {
			return nil, err
		}
		next.roles[r] = plan
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, classify("commit image catalog read", err)
	}
	ic.st = next
	return next, nil
}

// drop forgets st (the catalog changed since it was read).
func (ic *imageCache) drop(st *imageState) {
	ic.mu.Lock()
	if ic.st == st {
		ic.st = nil
	}
	ic.mu.Unlock()
}

// hasRoles reports whether st holds a plan for every role of roles.
func hasRoles(st *imageState, roles []string) bool {
	for _, r := range roles {
		if st.roles[r] == nil {
			return false
		}
	}
	return true
}

// loadTable reads realtime.messages' columns, partitions and triggers into st.
func loadTable(ctx context.Context, tx pgx.Tx, st *imageState) error {
	rows, err := tx.Query(ctx, columnsSQL)
	if err != nil {
		return classify("image columns", err)
	}
	for rows.Next() {
		var c messageColumn
		var def *string
		var computed bool
		if err := rows.Scan(&c.name, &c.typ, &def, &computed); err != nil {
			rows.Close()
			return classify("image columns", err)
		}
		if def != nil {
			c.def = *def
		}
		if computed {
			c.def = computedDefault
		}
		st.cols = append(st.cols, c)
	}
	if err := rows.Err(); err != nil {
		return classify("image columns", err)
	}
	var triggers int
	if err := tx.QueryRow(ctx, triggersSQL).Scan(&triggers); err != nil {
		return classify("image triggers", err)
	}
	parts, ok, err := loadPartitions(ctx, tx)
	if err != nil {
		return err
	}
	st.parts = parts
	st.usable = ok && triggers == 0
	return nil
}

// computedDefault marks a generated or identity column: its stored value
// is computed at insert, so a policy reading it takes the insert path.
const computedDefault = "\x00computed"

// loadRole builds role's plan: the combined expression of the SELECT/ALL
// policies that apply to it, as PostgreSQL combines them (permissive ones
// OR'd, restrictive ones AND'd, no permissive one: nothing visible; RLS
// off, or bypassed by the role: everything).
func loadRole(ctx context.Context, tx pgx.Tx, cols []messageColumn, role string) (*rolePlan, error) {
	rows, err := tx.Query(ctx, rolePoliciesSQL, role)
	if err != nil {
		return nil, classify("image policies", err)
	}
	var exists, rlsOn, force, bypass, owner bool
	var permissive, restrictive []string
	n := 0
	for rows.Next() {
		var perm *bool
		var qual *string
		if err := rows.Scan(&exists, &rlsOn, &force, &bypass, &owner, &perm, &qual); err != nil {
			rows.Close()
			return nil, classify("image policies", err)
		}
		n++
		if perm == nil || qual == nil {
			continue // no policy, or one without USING: it adds nothing
		}
		if *perm {
			permissive = append(permissive, "("+*qual+")")
		} else {
			restrictive = append(restrictive, "("+*qual+")")
		}
	}
	if err := rows.Err(); err != nil {
		return nil, classify("image policies", err)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: image policies: realtime.messages not found", ErrPolicy)
	}
	var expr string
	switch {
	case !exists:
		// Setting the role fails first; the plan is never reached.
		expr = "false"
	case !rlsOn || bypass || owner && !force:
		expr = "true"
	case len(permissive) == 0:
		expr = "false"
	default:
		expr = "(" + strings.Join(permissive, " OR ") + ")"
		for _, r := range restrictive {
			expr += " AND " + r
		}
	}
	return planFor(cols, expr), nil
}

// planFor returns the plan judging the combined policy expression expr.
func planFor(cols []messageColumn, expr string) *rolePlan {
	if strings.Contains(expr, "realtime.messages") || wholeRowRef(expr) {
		return &rolePlan{insert: true}
	}
	for _, sys := range systemColumns {
		if mentions(expr, sys) {
			return &rolePlan{insert: true} // a VALUES row has none
		}
	}
	own := make([]messageColumn, len(cols))
	for i, c := range cols {
		c.read = mentions(expr, c.name)
		if c.read && (c.def == computedDefault || strings.Contains(c.def, "nextval(")) {
			return &rolePlan{insert: true}
		}
		if c.def == computedDefault {
			c.def = ""
		}
		own[i] = c
	}
	return &rolePlan{one: imageSQL(own, expr, false), two: imageSQL(own, expr, true)}
}

// systemColumns are the system columns a policy could read from the stored
// row.
var systemColumns = []string{"tableoid", "ctid", "xmin", "xmax", "cmin", "cmax"}

// mentions reports whether name appears in expr as an identifier (bare or
// quoted); it may say yes for a string constant holding the name.
func mentions(expr, name string) bool {
	if strings.Contains(expr, quoteIdent(name)) {
		return true
	}
	re := regexp.MustCompile(`(^|[^A-Za-z0-9_$])` + regexp.QuoteMeta(name) + `($|[^A-Za-z0-9_$])`)
	return re.MatchString(expr)
}

// wholeRowRe finds "messages" as an identifier not qualified by a schema,
// with what follows it.
var wholeRowRe = regexp.MustCompile(`(^|[^A-Za-z0-9_$."])"?messages"?(\.[A-Za-z_"]|\.|[^.A-Za-z0-9_$]|$)`)

// columnRefRe is what follows the name in a column reference.
var columnRefRe = regexp.MustCompile(`^\.[A-Za-z_"]$`)

// wholeRowRef reports whether expr may refer to the whole probe row: the
// table's name not followed by '.' and a column name. It may say yes when
// it does not.
func wholeRowRef(expr string) bool {
	for _, m := range wholeRowRe.FindAllStringSubmatch(expr, -1) {
		if !columnRefRe.MatchString(m[2]) {
			return true
		}
	}
	return false
}
