package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Statements of the image read probe (docs/protocol.md §9.2 "Image read
// probes"). The catalog ones run with an empty search_path so pg_get_expr and
// format_type qualify every name.
const (
	// fingerprintSQL digests every catalog row an image plan depends on:
	// realtime.messages' pg_class row (RLS switches, owner, grants), its
	// policies, columns (column grants) and defaults, its partitions and
	// their bounds, triggers on it and on its partitions, role memberships
	// and the roles' superuser/inherit/bypassrls attributes. Any change to
	// one of them changes a row's xmin or the set of rows.
	fingerprintSQL = `SELECT pg_catalog.md5(pg_catalog.concat_ws('|',
(SELECT c.xmin::text FROM pg_catalog.pg_class c WHERE c.oid = 'realtime.messages'::pg_catalog.regclass),
(SELECT pg_catalog.string_agg(p.oid::text || ':' || p.xmin::text, ',' ORDER BY p.oid) FROM pg_catalog.pg_policy p
  WHERE p.polrelid = 'realtime.messages'::pg_catalog.regclass),
(SELECT pg_catalog.string_agg(a.attnum::text || ':' || a.xmin::text, ',' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = 'realtime.messages'::pg_catalog.regclass),
(SELECT pg_catalog.string_agg(d.oid::text || ':' || d.xmin::text, ',' ORDER BY d.oid) FROM pg_catalog.pg_attrdef d
  WHERE d.adrelid = 'realtime.messages'::pg_catalog.regclass),
(SELECT pg_catalog.string_agg(i.inhrelid::text || ':' || c.xmin::text, ',' ORDER BY i.inhrelid)
  FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
  WHERE i.inhparent = 'realtime.messages'::pg_catalog.regclass),
(SELECT pg_catalog.string_agg(t.oid::text || ':' || t.xmin::text, ',' ORDER BY t.oid) FROM pg_catalog.pg_trigger t
  WHERE t.tgrelid = 'realtime.messages'::pg_catalog.regclass OR t.tgrelid IN
    (SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = 'realtime.messages'::pg_catalog.regclass)),
(SELECT pg_catalog.string_agg(m.roleid::text || ':' || m.member::text || ':' || m.xmin::text, ',' ORDER BY m.roleid, m.member)
  FROM pg_catalog.pg_auth_members m),
(SELECT pg_catalog.string_agg(r.oid::text || ':' || r.rolsuper::text || r.rolinherit::text || r.rolbypassrls::text, ',' ORDER BY r.oid)
  FROM pg_catalog.pg_roles r)))`

	// columnsSQL lists realtime.messages' columns in order: name, type,
	// default expression (NULL without one), whether it is generated or an
	// identity (its value comes from elsewhere).
	columnsSQL = `SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),
  pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attgenerated <> '' OR a.attidentity <> ''
FROM pg_catalog.pg_attribute a
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = 'realtime.messages'::pg_catalog.regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`

	// partitionsSQL lists realtime.messages' partitions: kind and bound.
	partitionsSQL = `SELECT c.relkind::text, pg_catalog.pg_get_expr(c.relpartbound, c.oid)
FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'realtime.messages'::pg_catalog.regclass`

	// triggersSQL counts the enabled user triggers on realtime.messages
	// and its partitions (an insert would run them).
	triggersSQL = `SELECT count(*) FROM pg_catalog.pg_trigger t
WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' AND (t.tgrelid = 'realtime.messages'::pg_catalog.regclass OR t.tgrelid IN
  (SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = 'realtime.messages'::pg_catalog.regclass))`

	// rolePoliciesSQL is, for role $1: whether it exists, RLS on and
	// forced, whether the role bypasses RLS or owns the table, and the
	// SELECT/ALL policies that apply to it (as PostgreSQL picks them: the
	// role has the privileges of one of the policy's roles, or PUBLIC).
	rolePoliciesSQL = `SELECT r.oid IS NOT NULL, c.relrowsecurity, c.relforcerowsecurity,
  COALESCE(r.rolsuper OR r.rolbypassrls, false),
  COALESCE(pg_catalog.pg_has_role(r.oid, c.relowner, 'USAGE'), false),
  p.polpermissive, pg_catalog.pg_get_expr(p.polqual, p.polrelid)
FROM pg_catalog.pg_class c
LEFT JOIN pg_catalog.pg_roles r ON r.rolname = $1::text
LEFT JOIN pg_catalog.pg_policy p ON p.polrelid = c.oid AND p.polcmd IN ('r', '*') AND r.oid IS NOT NULL
  AND (0::pg_catalog.oid = ANY (p.polroles)
    OR EXISTS (SELECT 1 FROM pg_catalog.unnest(p.polroles) pr WHERE pg_catalog.pg_has_role(r.oid, pr, 'USAGE')))
WHERE c.oid = 'realtime.messages'::pg_catalog.regclass
ORDER BY p.polname`

	// imageContextSQL is contextSQL for an image probe: the same settings,
	// and the (implicit) transaction made read-only so nothing a policy
	// might write can persist.
	imageContextSQL = `SELECT set_config('transaction_read_only', 'on', true), set_config('role', $1::text, true),
set_config('realtime.topic', $2::text, true), set_config('request.jwt.claims', $3::text, true),
set_config('request.jwt.claim.sub', coalesce($4::text, ''), true),
set_config('request.jwt.claim.role', $1::text, true), set_config('request.headers', $5::text, true)`
)

// privilegeSQL is true when the current role may run the insert probe's
// select (USAGE on the schema, SELECT on the columns it names).
const privilegeSQL = `pg_catalog.has_schema_privilege('realtime', 'USAGE')
  AND pg_catalog.has_column_privilege('realtime.messages', 'id', 'SELECT')
  AND pg_catalog.has_column_privilege('realtime.messages', 'inserted_at', 'SELECT')`

// messageColumn is one column of realtime.messages.
type messageColumn struct {
	name, typ string
	// def is the default expression ("" without one).
	def string
	// read is set when the policies may read the column; the others are
	// NULL in the image (nothing reads them).
	read bool
}

// imageSQL returns the image statement for the combined policy expression
// expr: one row of realtime.messages per probed extension — $1 topic, the
// extension, $3 updated_at and inserted_at, $2 (broadcast) and $4
// (presence) id, every other column its default or NULL, as the insert
// probe stores it (columns no policy reads: NULL) — aliased "messages" so expr reads it as it reads the
// table. It returns one row: whether the role holds the select's
// privileges, and the extensions whose row expr admits.
func imageSQL(cols []messageColumn, expr string, presence bool) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	b.WriteString(privilegeSQL)
	b.WriteString(", ARRAY(SELECT messages.extension FROM (VALUES ")
	exts := []string{"broadcast"}
	if presence {
		exts = append(exts, "presence")
	}
	for i, ext := range exts {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for k, c := range cols {
			if k > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			switch c.name {
			case "topic":
				b.WriteString("$1::text")
			case "extension":
				b.WriteString("'" + ext + "'")
			case "updated_at", "inserted_at":
				b.WriteString("$3::timestamp")
			case "id":
				if ext == "broadcast" {
					b.WriteString("$2::uuid")
				} else {
					b.WriteString("$4::uuid")
				}
			default:
				if c.read && c.def != "" {
					b.WriteString(c.def)
				} else {
					b.WriteString("NULL")
				}
			}
			b.WriteString(")::")
			b.WriteString(c.typ)
		}
		b.WriteByte(')')
	}
	b.WriteString(") AS messages(")
	for k, c := range cols {
		if k > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c.name))
	}
	b.WriteString(") WHERE ")
	b.WriteString(expr)
	b.WriteString(")")
	return b.String()
}

// quoteIdent is name as a double-quoted SQL identifier.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// statementName names a prepared image statement after its text, so a
// connection prepares each text once and a changed text gets a new name.
func statementName(sql string) string {
	h := sha256.Sum256([]byte(sql))
	return "realtime_probe_image_" + hex.EncodeToString(h[:12])
}
