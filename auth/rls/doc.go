// Package rls answers the database questions of postgres_changes delivery:
// which tables a publication holds, what a table looks like, which columns a
// role may select, and which rows an identity may see under row level
// security. Its [Checker] implements [channels.Authorizer] directly and
// classifies its errors into the sentinels channels branches on
// ([channels.ErrNoTable], [channels.ErrNoRole], [channels.ErrTransient]).
//
// JWT verification stays in package auth; this package takes the verified
// identity as a [channels.Identity]. Imports go one way: rls → channels, and
// neither channels nor auth imports rls (cmd wires them together).
//
// Invariants: every query uses the simple protocol and leaves nothing behind
// on the session (role and claims are SET LOCAL inside one transaction, and a
// failed batch is rolled back or its connection discarded), so a shared
// PGlite session is safe. Names longer than 63 bytes, or holding NUL or
// invalid UTF-8, never reach SQL. Catalog answers are cached for
// [CheckerConfig.CacheTTL] and dropped by [Checker.Invalidate].
package rls
