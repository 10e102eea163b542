package rls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/decoder"
)

// Row checks judge the committed image (docs/protocol.md §4.5). For each
// (role, table) the Checker reads the SELECT/ALL policies that apply to the
// role and decides once how rows are judged:
//
//	policyAll   RLS off, the role bypasses RLS, or owns the table without FORCE
//	policyNone  RLS on and no permissive policy applies
//	policyExpr  the combined expression: permissive ones OR'd, restrictive AND'd,
//	            evaluated in Go when it compiles, otherwise by PostgreSQL on the
//	            images (the live row only for unchanged TOASTed values the
//	            policy reads: live.go)
const (
	policyAll = iota + 1
	policyNone
	policyExpr
)

// policySet is how one role's rows of one table are judged.
type policySet struct {
	mode int
	// expr is the combined USING expression, rendered with search_path ''.
	expr string
	// prog is expr compiled, nil when it must run in PostgreSQL.
	prog *node
	// reads holds the names of the table's columns that appear in expr
	// (a superset of what it reads), for images with absent columns.
	reads map[string]bool
	// wholeRow is set when expr may refer to the whole row (the table's
	// name not followed by a column): every column then goes to PostgreSQL.
	wholeRow bool
	// shared is expr rewritten for statements that judge several groups
	// at once (shared.go), "" when the policy may see the claims otherwise.
	shared string
	// fns are the auth functions shared was made for.
	fns *stdFuncs
}

// policiesSQL reads, in a transaction with search_path ” (so pg_get_expr
// qualifies every name), whether the role bypasses RLS on the table and the
// SELECT/ALL policies that apply to it, plus the bodies of auth.uid(),
// auth.role() and auth.jwt(). Arguments: schema, table, role literals.
const policiesSQL = `BEGIN READ ONLY;SET LOCAL search_path = '';
SELECT r.oid IS NOT NULL, c.relrowsecurity, c.relforcerowsecurity,
  COALESCE(r.rolsuper OR r.rolbypassrls, false),
  COALESCE(pg_catalog.pg_has_role(r.oid, c.relowner, 'USAGE'), false),
  p.polpermissive, pg_catalog.pg_get_expr(p.polqual, p.polrelid),
  p.oid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid = p.oid AND NOT (
      d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND (d.refobjid = c.oid OR EXISTS (
        SELECT 1 FROM pg_catalog.pg_class dc WHERE dc.oid = d.refobjid AND dc.relkind IN ('r', 'p', 'm')
          AND (NOT dc.relrowsecurity OR COALESCE(r.rolsuper OR r.rolbypassrls, false)
            OR NOT dc.relforcerowsecurity AND pg_catalog.pg_has_role(r.oid, dc.relowner, 'USAGE'))))
      OR d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND EXISTS (
        SELECT 1 FROM pg_catalog.pg_proc dp JOIN pg_catalog.pg_namespace dn ON dn.oid = dp.pronamespace
        WHERE dp.oid = d.refobjid AND dn.nspname = 'auth' AND dp.proname IN ('uid', 'role', 'jwt') AND dp.pronargs = 0)
      OR d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass AND EXISTS (
        SELECT 1 FROM pg_catalog.pg_type dt WHERE dt.oid = d.refobjid AND dt.typtype <> 'd')
      OR d.refclassid IN ('pg_catalog.pg_collation'::pg_catalog.regclass, 'pg_catalog.pg_namespace'::pg_catalog.regclass)))
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_roles r ON r.rolname = %[3]s
LEFT JOIN pg_catalog.pg_policy p ON p.polrelid = c.oid AND p.polcmd IN ('r', '*') AND r.oid IS NOT NULL
  AND (0::pg_catalog.oid = ANY (p.polroles)
    OR EXISTS (SELECT 1 FROM pg_catalog.unnest(p.polroles) pr WHERE pg_catalog.pg_has_role(r.oid, pr, 'USAGE')))
WHERE n.nspname = %[1]s AND c.relname = %[2]s AND c.relkind IN ('r', 'p')
ORDER BY p.polname;
SELECT p.proname::text, p.prosrc FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'auth' AND p.proname IN ('uid', 'role', 'jwt') AND p.pronargs = 0 AND p.prolang =
  (SELECT oid FROM pg_catalog.pg_language WHERE lanname = 'sql');
COMMIT`

// policies returns how role's rows of schema.table are judged (cached).
func (c *Checker) policies(ctx context.Context, e *tableEntry, role string) (*policySet, error) {
	k := colsKey{tableKey{e.info.Schema, e.info.Table}, role}
	return c.pols.get(ctx, k, c.now, c.ttl, func(ctx context.Context) (*policySet, error) {
		return c.loadPolicies(ctx, e, role)
	})
}

func (c *Checker) loadPolicies(ctx context.Context, e *tableEntry, role string) (*policySet, error) {
	var lits [3]strings.Builder
	for i, s := range []string{e.info.Schema, e.info.Table, role} {
		if err := writeLiteral(&lits[i], s); err != nil {
			return nil, fmt.Errorf("rls: policies of %q on %q.%q: %w", role, e.info.Schema, e.info.Table, err)
		}
	}
	results, err := c.runBatch(ctx, fmt.Sprintf(policiesSQL, lits[0].String(), lits[1].String(), lits[2].String()))
	if err != nil {
		return nil, fmt.Errorf("rls: policies of %q on %q.%q: %w", role, e.info.Schema, e.info.Table, err)
	}
	// BEGIN, SET, policies, functions, COMMIT.
	if len(results) != 5 {
		return nil, fmt.Errorf("rls: policies of %q on %q.%q: got %d results", role, e.info.Schema, e.info.Table, len(results))
	}
	rows := results[2].Rows
	if len(rows) == 0 {
		return nil, fmt.Errorf("rls: policies of %q on %q.%q: %w", role, e.info.Schema, e.info.Table, channels.ErrNoTable)
	}
	if string(rows[0][0]) != "t" {
		return nil, fmt.Errorf("rls: policies of %q on %q.%q: %w", role, e.info.Schema, e.info.Table, channels.ErrNoRole)
	}
	rlsOn, force, bypass, owner := string(rows[0][1]) == "t", string(rows[0][2]) == "t", string(rows[0][3]) == "t", string(rows[0][4]) == "t"
	if !rlsOn || bypass || owner && !force {
		return &policySet{mode: policyAll}, nil
	}
	var permissive, restrictive []string
	shareable := true
	for _, r := range rows {
		if r[5] == nil || r[6] == nil {
			continue // no policy, or one without USING (it adds nothing)
		}
		shareable = shareable && string(r[7]) == "t"
		if string(r[5]) == "t" {
			permissive = append(permissive, "("+string(r[6])+")")
		} else {
			restrictive = append(restrictive, "("+string(r[6])+")")
		}
	}
	if len(permissive) == 0 {
		return &policySet{mode: policyNone}, nil
	}
	expr := "(" + strings.Join(permissive, " OR ") + ")"
	for _, r := range restrictive {
		expr += " AND " + r
	}
	ps := &policySet{mode: policyExpr, expr: expr, reads: make(map[string]bool), wholeRow: wholeRowRef(expr, e.info.Table)}
	cols := make(map[string]string, len(e.info.Columns))
	for _, col := range e.info.Columns {
		cols[col.Name] = col.Type
		if mentions(expr, col.Name) {
			ps.reads[col.Name] = true
		}
	}
	bodies := map[string]string{}
	for _, r := range results[3].Rows {
		bodies[string(r[0])] = string(r[1])
	}
	fns := classifyFuncs(bodies["uid"], bodies["role"], bodies["jwt"])
	if fns.ok && !c.noCompile {
		if prog := compileExpr(expr, cols); prog != nil {
			ps.prog = prog
			c.funcs.Store(fns)
		}
	}
	if fns.ok && shareable {
		if s, ok := sharedExpr(expr); ok {
			ps.shared, ps.fns = s, fns
		}
	}
	return ps, nil
}

// mentions reports whether name appears in expr as an identifier (bare or
// quoted); it may say yes for a string constant holding the name.
func mentions(expr, name string) bool {
	if strings.Contains(expr, pgx.Identifier{name}.Sanitize()) {
		return true
	}
	re := regexp.MustCompile(`(^|[^A-Za-z0-9_$])` + regexp.QuoteMeta(name) + `($|[^A-Za-z0-9_$])`)
	return re.MatchString(expr)
}

// sqlJob is one group sent to PostgreSQL.
type sqlJob struct {
	check *channels.RowCheck
	e     *tableEntry
	ps    *policySet
	rows  []int // indices into check.Images
	// verify, when set, holds the compiled answers to compare with.
	verify []bool
}

// CheckRows implements [channels.Authorizer]: see there and docs/protocol.md
// §4.5. Groups whose policies compile are judged in Go; the rest travel in
// one simple-protocol message (one transaction, role and claims SET LOCAL per
// group). A group that fails for a reason retrying does not cure is denied
// alone (its Err set, logged once) and the others are re-sent. Safe for
// concurrent use.
func (c *Checker) CheckRows(ctx context.Context, checks []*channels.RowCheck) error {
	if err := c.fillLive(ctx, checks); err != nil {
		return err
	}
	var jobs []*sqlJob
	for _, ck := range checks {
		job, err := c.prepare(ctx, ck)
		if err != nil {
			if errors.Is(err, errBadClaims) || errors.Is(err, errNoIdentity) {
				ck.Err, ck.Visible = err, nil
				continue
			}
			if cerr := classify(err); errors.Is(cerr, channels.ErrTransient) || isContextErr(cerr) {
				return cerr
			}
			ck.Err, ck.Visible = err, nil
			continue
		}
		if job != nil {
			jobs = append(jobs, job)
		}
	}
	if err := awaitForJobs(ctx, jobs); err != nil {
		return err
	}
	return c.runParallel(ctx, makeUnits(jobs))
}

// awaitForJobs waits for the batch's commits to be visible
// ([decoder.AwaitVisible]) when a job evaluates a policy PostgreSQL must
// judge: its functions and sub-queries may read rows the batch's own
// transactions wrote (a membership granted together with the row). Jobs
// that only verify a compiled decision read nothing live and do not wait.
func awaitForJobs(ctx context.Context, jobs []*sqlJob) error {
	for _, j := range jobs {
		if j.verify == nil {
			if err := decoder.AwaitVisible(ctx); err != nil {
				return fmt.Errorf("%w: rls: wait for commit visibility: %w", channels.ErrTransient, err)
			}
			return nil
		}
	}
	return nil
}

// prepare answers ck in Go when it can and otherwise returns the job for
// PostgreSQL. Errors are the group's (classified by the caller).
func (c *Checker) prepare(ctx context.Context, ck *channels.RowCheck) (*sqlJob, error) {
	if ck.ID == nil || ck.Rel == nil {
		return nil, errNoIdentity
	}
	if err := checkIdentity(ck.ID); err != nil {
		return nil, fmt.Errorf("rls: rows of %q.%q as role %q: %w", ck.Rel.Schema, ck.Rel.Table, ck.ID.Role, err)
	}
	e, err := c.table(ctx, ck.Rel.Schema, ck.Rel.Table)
	if err != nil {
		return nil, err
	}
	ck.Visible = make([]bool, len(ck.Images))
	if !e.info.RLS || len(ck.Images) == 0 {
		for i := range ck.Visible {
			ck.Visible[i] = true
		}
		return nil, nil
	}
	ps, err := c.policies(ctx, e, ck.ID.Role)
	if err != nil {
		return nil, err
	}
	switch ps.mode {
	case policyAll:
		for i := range ck.Visible {
			ck.Visible[i] = true
		}
		return nil, nil
	case policyNone:
		return nil, nil
	}
	job := &sqlJob{check: ck, e: e, ps: ps}
	if ps.prog != nil {
		if prog, ok := ps.prog.bind(ck.Rel); ok {
			if done, err := c.evalCompiled(prog, ck, job); done || err != nil {
				return nil, err
			}
		}
	}
	if job.rows == nil {
		job.rows = make([]int, len(ck.Images))
		for i := range job.rows {
			job.rows[i] = i
		}
	}
	return job, nil
}

// evalCompiled judges ck in Go. done is false when some rows need
// PostgreSQL (they are left in job.rows) or when this group is sampled for
// verification (job.verify holds the Go answers).
func (c *Checker) evalCompiled(prog *node, ck *channels.RowCheck, job *sqlJob) (done bool, err error) {
	fns := c.funcs.Load()
	if fns == nil {
		return false, nil
	}
	env, err := newEvalEnv(ck.ID, fns)
	if errors.Is(err, errNeedSQL) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var needSQL []int
	for i, img := range ck.Images {
		v, err := prog.eval(env, img)
		switch {
		case errors.Is(err, errNeedSQL):
			needSQL = append(needSQL, i)
		case err != nil:
			c.stats.compiled.Add(1)
			return false, err // the expression raises: the group is denied
		default:
			ck.Visible[i] = v == triTrue
		}
	}
	c.stats.compiled.Add(1)
	if len(needSQL) > 0 {
		job.rows = needSQL
		return false, nil
	}
	if c.verify > 0 && rand.Float64() < c.verify {
		job.verify = append([]bool(nil), ck.Visible...)
		return false, nil
	}
	return true, nil
}

// checkIdentity refuses identities whose role or claims cannot reach SQL:
// such a group is denied, never retried.
func checkIdentity(id *channels.Identity) error {
	if !validName(id.Role) {
		return fmt.Errorf("invalid role name: %w", channels.ErrNoRole)
	}
	for _, s := range []string{string(id.Claims), id.Sub} {
		var b strings.Builder
		if err := writeLiteral(&b, s); err != nil {
			return fmt.Errorf("claims: %w", errBadClaims)
		}
	}
	return nil
}

// errNoIdentity means a row check came without identity or relation.
var errNoIdentity = errors.New("rls: row check without identity or relation")

// errBadClaims means the claims cannot be passed to PostgreSQL (NUL bytes,
// invalid UTF-8): the group is denied, not retried.
var errBadClaims = errors.New("claims cannot be represented in PostgreSQL")

// runUnits sends every unit in one message and stores the answers. When a
// unit fails for a non-transient reason its index is returned (the units
// after it did not run): a group alone is then denied, a shared unit is
// to be split into groups alone by the caller; -1 when all ran.
func (c *Checker) runUnits(ctx context.Context, units []*sqlUnit) (int, error) {
	var b strings.Builder
	b.WriteString("BEGIN READ ONLY;")
	for k, u := range units {
		var err error
		if u.shared {
			err = writeShared(&b, u)
		} else {
			err = writeJob(&b, u.jobs[0])
		}
		if err != nil {
			// Values were checked; a failure here is a bug: deny or split.
			return c.failUnit(units, k, err), nil
		}
	}
	b.WriteString("COMMIT")
	results, err := c.runBatch(ctx, b.String())
	if err != nil {
		cerr := classify(err)
		if errors.Is(cerr, channels.ErrTransient) || isContextErr(cerr) {
			return -1, cerr
		}
		// The first failing result tells which unit failed; a statement
		// that fails before it describes its rows (in planning, say) has no
		// result, and then the failing one is the first missing.
		failed := unitAt(units, len(results))
		for r, res := range results {
			if res.Err != nil {
				failed = unitAt(units, r)
				break
			}
		}
		return c.failUnit(units, failed, err), nil
	}
	want := 2
	for _, u := range units {
		want += u.statements()
	}
	if len(results) != want {
		return -1, fmt.Errorf("%w: rls: got %d results for %d units", channels.ErrTransient, len(results), len(units))
	}
	r := 1
	for _, u := range units {
		r += u.statements()
		got := make([][]bool, len(u.jobs))
		for n, j := range u.jobs {
			got[n] = make([]bool, len(j.check.Images))
		}
		for _, row := range results[r-1].Rows {
			n, i := 0, 0
			var err error
			if u.shared {
				n, err = strconv.Atoi(string(row[0]))
				if err == nil {
					i, err = strconv.Atoi(string(row[1]))
				}
			} else {
				i, err = strconv.Atoi(string(row[0]))
			}
			if err != nil || n < 0 || n >= len(got) || i < 0 || i >= len(got[n]) {
				return -1, fmt.Errorf("rls: bad row index %q", row)
			}
			got[n][i] = true
		}
		for n, j := range u.jobs {
			c.store(ctx, j, got[n], u.shared)
		}
	}
	return -1, nil
}

// store records a job's answers: got holds PostgreSQL's, one per image.
func (c *Checker) store(ctx context.Context, j *sqlJob, got []bool, shared bool) {
	ck := j.check
	if j.verify != nil {
		c.stats.verified.Add(1)
		for i := range got {
			if got[i] != j.verify[i] {
				c.stats.disagreements.Add(1)
				c.log.LogAttrs(ctx, slog.LevelError, "rls: compiled policy disagrees with PostgreSQL",
					slog.String("table", ck.Rel.Schema+"."+ck.Rel.Table), slog.String("role", ck.ID.Role),
					slog.String("policy", j.ps.expr), slog.Bool("compiled", j.verify[i]), slog.Bool("postgres", got[i]))
				break
			}
		}
	} else {
		c.stats.sqlGroups.Add(1)
		if shared {
			c.stats.sharedGroups.Add(1)
		}
	}
	for _, i := range j.rows {
		ck.Visible[i] = got[i]
	}
}

// unitAt returns the index of the unit whose statement produced result r
// (result 0 is BEGIN); the last unit for COMMIT.
func unitAt(units []*sqlUnit, r int) int {
	end := 1
	for k, u := range units {
		end += u.statements()
		if r < end {
			return k
		}
	}
	return len(units) - 1
}

// failUnit handles units[k]'s failure for err: a group alone is denied; a
// shared unit is left for the caller to split. It returns k.
func (c *Checker) failUnit(units []*sqlUnit, k int, err error) int {
	if u := units[k]; !u.shared {
		ck := u.jobs[0].check
		ck.Err, ck.Visible = fmt.Errorf("rls: rows of %q.%q as role %q: %w", ck.Rel.Schema, ck.Rel.Table, ck.ID.Role, err), nil
	} else {
		c.log.LogAttrs(context.Background(), slog.LevelDebug, "rls: shared check failed, judging its groups alone",
			slog.String("table", u.jobs[0].check.Rel.Schema+"."+u.jobs[0].check.Rel.Table), slog.Int("groups", len(u.jobs)), slog.Any("err", err))
	}
	return k
}

// jobStatements is the number of statements (results) per job.
const jobStatements = 3

// ordCol numbers the images; no table is expected to have a column of
// this name (the policy of one that has would read the number).
const ordCol = "_realtime_image_ord"
