package rls

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// catalogFingerprintSQL summarizes everything a row check or a column
// privilege depends on: tables' RLS flags, owners and ACLs, column ACLs,
// policies, roles (superuser, BYPASSRLS, membership) and the bodies of the
// auth schema's functions. Any GRANT, REVOKE, ALTER TABLE … ROW LEVEL
// SECURITY, CREATE/ALTER/DROP POLICY or role change alters it.
const catalogFingerprintSQL = `SELECT pg_catalog.md5(pg_catalog.concat_ws('|',
 (SELECT pg_catalog.string_agg(c.oid::text || ':' || c.relrowsecurity::text || c.relforcerowsecurity::text
    || c.relowner::text || COALESCE(c.relacl::text, ''), ',' ORDER BY c.oid)
  FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'p') AND c.relnamespace <> 'pg_catalog'::pg_catalog.regnamespace
    AND c.relnamespace <> 'information_schema'::pg_catalog.regnamespace),
 (SELECT pg_catalog.string_agg(a.attrelid::text || '.' || a.attnum::text || a.attacl::text, ',' ORDER BY a.attrelid, a.attnum)
  FROM pg_catalog.pg_attribute a WHERE a.attacl IS NOT NULL),
 (SELECT pg_catalog.string_agg(p.oid::text || p.polcmd::text || p.polpermissive::text || p.polroles::text
    || COALESCE(pg_catalog.pg_get_expr(p.polqual, p.polrelid), ''), ',' ORDER BY p.oid) FROM pg_catalog.pg_policy p),
 (SELECT pg_catalog.string_agg(r.oid::text || r.rolsuper::text || r.rolbypassrls::text, ',' ORDER BY r.oid) FROM pg_catalog.pg_roles r),
 (SELECT pg_catalog.string_agg(m.roleid::text || '>' || m.member::text, ',' ORDER BY m.roleid, m.member) FROM pg_catalog.pg_auth_members m),
 (SELECT pg_catalog.string_agg(p.oid::text || p.prosrc, ',' ORDER BY p.oid) FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'auth')))`

// WatchCatalog polls the catalog every interval until ctx ends. When
// privileges, policies, RLS flags, roles or the auth functions change it
// drops every cached answer ([Checker.InvalidateAll]) and then calls
// onChange (e.g. to re-validate live bindings). Query errors are logged at
// debug level and retried at the next tick. Blocks; run it in a goroutine.
func (c *Checker) WatchCatalog(ctx context.Context, interval time.Duration, onChange func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := ""
	for {
		var fp string
		err := c.pool.QueryRow(ctx, catalogFingerprintSQL, pgx.QueryExecModeSimpleProtocol).Scan(&fp)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				c.log.LogAttrs(ctx, slog.LevelDebug, "rls: catalog watch failed", slog.Any("err", err))
			}
		case last != "" && fp != last:
			c.log.LogAttrs(ctx, slog.LevelInfo, "rls: privileges or policies changed; caches dropped")
			c.InvalidateAll()
			if onChange != nil {
				onChange()
			}
			last = fp
		default:
			last = fp
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// InvalidateAll drops every cached table description, column privilege,
// policy and the list of published tables. Safe for concurrent use.
func (c *Checker) InvalidateAll() {
	all := func(tableKey) bool { return true }
	c.tables.deleteIf(all)
	c.cols.deleteIf(func(colsKey) bool { return true })
	c.pols.deleteIf(func(colsKey) bool { return true })
	c.pubMu.Lock()
	c.published = nil
	c.pubMu.Unlock()
}
