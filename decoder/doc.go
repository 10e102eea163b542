// Package decoder turns database changes into [Change] values for the
// realtime service: the types every change source shares ([Relation],
// [Change], [Value], [Source], [Sink], [Status]), the rendering of
// PostgreSQL values as JSON the way the reference server does it
// (docs/protocol.md §4.3, see [Render]), a pg_type cache ([TypeCache]), and two
// sources: logical decoding over pgoutput ([Logical]) and, for PGlite,
// which has no logical decoding, a trigger-fed change table read by id
// ([ChangeTable]; docs/pglite.md).
//
// Invariants:
//   - A *Relation is an immutable snapshot; a schema change produces a new
//     one. Changes keep pointing at the snapshot they were decoded with.
//   - Values never alias receive buffers: everything in a Change is copied
//     out before the Change leaves the goroutine that decoded it, and
//     nothing in it is mutated afterwards.
//   - A source confirms a position to the database only after the sink
//     returned nil for the batch holding it. Delivery is at least once:
//     after an error, transactions beyond the confirmed position are
//     delivered again.
//   - Value text is produced with TimeZone=UTC, DateStyle=ISO,
//     IntervalStyle=postgres, extra_float_digits=1 and bytea_output=hex,
//     whatever the server defaults are; the logical source sets these as
//     startup parameters of its connections because a replication
//     connection cannot run SET. So timestamptz values always render with
//     +00:00, as on Supabase. The notify source captures rows as jsonb; its
//     Value.Text is derived from the jsonb value (booleans as t/f, dates
//     in ISO form), which the filter engine accepts as well.
//
// The package imports nothing else of the project but internal helpers.
package decoder
