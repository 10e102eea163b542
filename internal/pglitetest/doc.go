// Package pglitetest starts PGlite behind its socket bridge (pglite-server,
// npm @electric-sql/pglite-socket) for tests of the notify change source.
//
// The npm packages live in the folder node/ next to this package, pinned by
// its package-lock.json; install them once with
//
//	cd internal/pglitetest/node && npm ci
//
// (scripts/setup does it). Without them [Start] fails the test with that
// hint rather than skipping it.
//
// Creating a PGlite data directory takes several seconds, so the first
// server of a machine initialises a template directory (cached under
// os.TempDir(), keyed by the lock file) and every server starts on a copy
// of it.
package pglitetest
