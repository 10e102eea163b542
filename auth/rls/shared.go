package rls

import (
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/decoder"
)

// Claims as rows (docs/protocol.md §4.5). A policy PostgreSQL must judge
// usually reads the claims only through auth.uid(), auth.role() and
// auth.jwt(). When those have standard bodies and nothing else in the
// policy can see the claims, the groups of one (table, role) of a batch are
// judged by one statement: each group's claims become a row, the three
// calls become references to its columns, and the statement returns the
// (group, image) pairs that pass. PostgreSQL then plans and runs the policy
// (and its sub-queries) once per batch instead of once per group.
//
// Nothing else can see the claims when the policy (pg_depend of each
// applicable policy, checked in policiesSQL) calls no user function but
// the three, reads no view and no table whose own row security applies to
// the role, and uses no user operator or domain; and when its text names
// none of the built-ins that read settings (sharedDenied). The role is the
// same for every row of the statement, so current_user and privileges are
// as for a group alone.

// Column names of the claims and pair row sources; a table column of the
// same name makes the shared statement fail, and its groups are then
// judged one by one.
const (
	claimsAlias = "_realtime_claims"
	pairsAlias  = "_realtime_pairs"
	claimN      = "_realtime_claim_n"
	claimUID    = "_realtime_claim_uid"
	claimRole   = "_realtime_claim_role"
	claimJWT    = "_realtime_claim_jwt"
	pairN       = "_realtime_pair_n"
	pairImage   = "_realtime_pair_i"
	pairOrd     = "_realtime_pair_o"
)

// sharedDenied are words that, anywhere in a policy's text (string
// constants included), keep it out of shared statements: built-ins that
// read settings, or run SQL given as text.
var sharedDenied = []string{"current_setting", "set_config", "pg_settings", "pg_show_all_settings", "_to_xml", "_to_xmlschema"}

// sharedExpr rewrites expr (as pg_get_expr renders it with search_path
// empty) for a shared statement: auth.uid(), auth.role() and auth.jwt()
// outside string constants and quoted names become the claims row's
// columns. ok is false when the text holds a denied word, an escape string
// constant, or another reference to schema auth.
func sharedExpr(expr string) (out string, ok bool) {
	lower := strings.ToLower(expr)
	for _, w := range sharedDenied {
		if strings.Contains(lower, w) {
			return "", false
		}
	}
	calls := map[string]string{
		"auth.uid()":  claimsAlias + "." + claimUID,
		"auth.role()": claimsAlias + "." + claimRole,
		"auth.jwt()":  claimsAlias + "." + claimJWT,
	}
	var b strings.Builder
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for {
				if j >= len(expr) {
					return "", false
				}
				if expr[j] == c {
					if j+1 < len(expr) && expr[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			if strings.EqualFold(expr[i:j+1], `"auth"`) {
				return "", false
			}
			b.WriteString(expr[i : j+1])
			i = j + 1
		case identStart(c):
			j := i
			for j < len(expr) && identChar(expr[j]) {
				j++
			}
			word := expr[i:j]
			if j < len(expr) && expr[j] == '\'' {
				return "", false // E'...', U&'...', B'...': escapes we do not model
			}
			if strings.EqualFold(word, "auth") && (i == 0 || expr[i-1] != '.') {
				matched := false
				for call, col := range calls {
					if strings.HasPrefix(expr[i:], call) && (i+len(call) == len(expr) || !identChar(expr[i+len(call)])) {
						b.WriteString(col)
						i += len(call)
						matched = true
						break
					}
				}
				if !matched {
					return "", false
				}
				continue
			}
			b.WriteString(word)
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), true
}

func identStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func identChar(c byte) bool {
	return identStart(c) || c == '$' || c >= '0' && c <= '9'
}

// claimsRow is one group's values of auth.uid(), auth.role() and
// auth.jwt() as the standard bodies compute them with the claims the
// checker would set; ok is false when Go cannot tell exactly (claims that
// do not parse, a sub that is not a uuid: the group is then judged alone,
// where PostgreSQL raises or answers as it does).
func claimsRow(id *channels.Identity, fns *stdFuncs) (uid string, uidNull bool, ok bool) {
	if fns == nil || !fns.ok || len(id.Claims) == 0 {
		return "", false, false
	}
	env, err := newEvalEnv(id, fns)
	if err != nil || env.uidErr != nil {
		return "", false, false
	}
	if env.uid == nil {
		return "", true, true
	}
	return env.uidStr, false, true
}

// sqlUnit is one part of a check message: one group judged alone (one
// job), or the groups of one (table, role) judged by one shared statement.
type sqlUnit struct {
	jobs   []*sqlJob
	shared bool
	// uid holds each job's auth.uid() text (shared units); uidNull marks NULL.
	uid     []string
	uidNull []bool
}

// rowCount is the number of (group, image) decisions the unit asks for.
func (u *sqlUnit) rowCount() int {
	n := 0
	for _, j := range u.jobs {
		n += len(j.rows)
	}
	return n
}

// statements is the number of results the unit's SQL produces.
func (u *sqlUnit) statements() int {
	if u.shared {
		return sharedStatements
	}
	return jobStatements
}

// sharedStatements is the number of statements of a shared unit: SET
// LOCAL ROLE and the SELECT.
const sharedStatements = 2

// unitKey is what groups judged together share: the policy (by its text:
// an uncached or refreshed policy set is another value), the relation the
// images were decoded with, and the role.
type unitKey struct {
	expr string
	rel  *decoder.Relation
	role string
}

// makeUnits bundles jobs into units: the groups of one (policy,
// relation, role) whose policy and claims allow it go in one shared unit
// when there are two or more; every other job is a unit of its own. Jobs
// keep their order within a unit; units are in order of first job.
func makeUnits(jobs []*sqlJob) []*sqlUnit {
	var units []*sqlUnit
	open := map[unitKey]*sqlUnit{}
	for _, j := range jobs {
		if j.verify == nil && j.ps.shared != "" {
			if uid, null, ok := claimsRow(j.check.ID, j.ps.fns); ok {
				k := unitKey{j.ps.shared, j.check.Rel, j.check.ID.Role}
				u := open[k]
				if u == nil {
					u = &sqlUnit{shared: true}
					open[k] = u
					units = append(units, u)
				}
				u.jobs = append(u.jobs, j)
				u.uid = append(u.uid, uid)
				u.uidNull = append(u.uidNull, null)
				continue
			}
		}
		units = append(units, &sqlUnit{jobs: []*sqlJob{j}})
	}
	for _, u := range units {
		if u.shared && len(u.jobs) == 1 {
			u.shared, u.uid, u.uidNull = false, nil, nil
		}
	}
	return units
}

// alone returns u's jobs as units of one job each.
func (u *sqlUnit) alone() []*sqlUnit {
	out := make([]*sqlUnit, len(u.jobs))
	for i, j := range u.jobs {
		out[i] = &sqlUnit{jobs: []*sqlJob{j}}
	}
	return out
}

// writeShared writes a shared unit: the role, then one SELECT of the
// (group, image index) pairs that pass. Images shared by several groups
// (the same decoded row) are sent once.
func writeShared(b *strings.Builder, u *sqlUnit) error {
	first := u.jobs[0]
	ck0 := first.check
	type imgRef struct {
		job *sqlJob
		i   int
	}
	var (
		images []imgRef // by ord
		seen   = map[*decoder.Value]int{}
		pn     strings.Builder
		pi     strings.Builder
		po     strings.Builder
	)
	for n, j := range u.jobs {
		for _, i := range j.rows {
			img := j.check.Images[i]
			ord := -1
			if len(img) > 0 {
				if o, ok := seen[&img[0]]; ok {
					ord = o
				}
			}
			if ord < 0 {
				ord = len(images)
				images = append(images, imgRef{j, i})
				if len(img) > 0 {
					seen[&img[0]] = ord
				}
			}
			for _, x := range []struct {
				b *strings.Builder
				v int
			}{{&pn, n}, {&pi, i}, {&po, ord}} {
				if x.b.Len() > 0 {
					x.b.WriteByte(',')
				}
				x.b.WriteString(strconv.Itoa(x.v))
			}
		}
	}
	b.WriteString("SET LOCAL ROLE ")
	b.WriteString(pgx.Identifier{ck0.ID.Role}.Sanitize())
	b.WriteString(";SELECT ")
	b.WriteString(pairsAlias + "." + pairN + "," + pairsAlias + "." + pairImage)
	b.WriteString(" FROM ROWS FROM (pg_catalog.unnest('{")
	b.WriteString(pn.String())
	b.WriteString("}'::pg_catalog.int4[]),pg_catalog.unnest('{")
	b.WriteString(pi.String())
	b.WriteString("}'::pg_catalog.int4[]),pg_catalog.unnest('{")
	b.WriteString(po.String())
	b.WriteString("}'::pg_catalog.int4[])) AS " + pairsAlias + "(" + pairN + "," + pairImage + "," + pairOrd + ")")
	// The claims: one row per group.
	var ns, uids, roles, jwts strings.Builder
	for n, j := range u.jobs {
		for _, x := range []*strings.Builder{&ns, &uids, &roles, &jwts} {
			if n > 0 {
				x.WriteByte(',')
			}
		}
		ns.WriteString(strconv.Itoa(n))
		if u.uidNull[n] {
			uids.WriteString("NULL")
		} else {
			writeArrayElem(&uids, u.uid[n])
		}
		writeArrayElem(&roles, j.check.ID.Role)
		writeArrayElem(&jwts, string(j.check.ID.Claims))
	}
	b.WriteString(" JOIN (SELECT x.n AS " + claimN + ",x.uid::pg_catalog.uuid AS " + claimUID + ",x.role AS " + claimRole + ",x.jwt::pg_catalog.jsonb AS " + claimJWT)
	b.WriteString(" FROM ROWS FROM (pg_catalog.unnest('{")
	b.WriteString(ns.String())
	b.WriteString("}'::pg_catalog.int4[])")
	for _, arr := range []*strings.Builder{&uids, &roles, &jwts} {
		b.WriteString(",pg_catalog.unnest(")
		if err := writeLiteral(b, "{"+arr.String()+"}"); err != nil {
			return err
		}
		b.WriteString("::pg_catalog.text[])")
	}
	b.WriteString(") AS x(n,uid,role,jwt)) AS " + claimsAlias + " ON " + claimsAlias + "." + claimN + "=" + pairsAlias + "." + pairN + " JOIN ")
	ords := make([]int, len(images))
	for k := range ords {
		ords[k] = k
	}
	if err := writeImageSource(b, first.e, first.ps, ck0.Rel, ords, func(k int) []decoder.Value {
		r := images[k]
		return r.job.check.Images[r.i]
	}); err != nil {
		return err
	}
	b.WriteString(" ON ")
	b.WriteString(pgx.Identifier{ck0.Rel.Table}.Sanitize())
	b.WriteString("." + ordCol + "=" + pairsAlias + "." + pairOrd + " WHERE ")
	b.WriteString(first.ps.shared)
	b.WriteByte(';')
	return nil
}
