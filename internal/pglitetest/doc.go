// Package pglitetest starts PGlite behind a socket bridge for tests of the
// notify change source: the repository's bridge, cmd/pglite-bridge (which
// relays notifications to every listening socket), or, with
// [Options.Stock], stock pglite-server (npm @electric-sql/pglite-socket),
// which hands them to the socket that committed.
//
// The npm packages live in cmd/pglite-bridge and in the folder node/ next
// to this package, pinned by their package-lock.json files; install them
// once with
//
//	(cd cmd/pglite-bridge && npm ci) && (cd internal/pglitetest/node && npm ci)
//
// (scripts/setup does it). Without them [Start] fails the test with that
// hint rather than skipping it.
//
// Creating a PGlite data directory takes several seconds, so the first
// server of a machine initialises a template directory (cached under
// os.TempDir(), keyed by the bridge's lock file) and every server starts on
// a copy of it.
package pglitetest
