// Package filter implements the `filter` parameter of a postgres_changes
// binding (docs/protocol.md §4.7): the grammar ([Parse]), subscribe-time type
// checking ([Compile]) and per-change evaluation ([Filter.Match]).
//
// A filter is a comma-separated AND of conditions `column=[not.]op.value`.
// [Parse] reproduces the real server's (supabase/realtime 2.129.8) splitting
// and error texts; [Compile] plays the part of the database trigger that
// validates a subscription (column exists and is selectable, the value casts
// to the column type, the operator applies to the type) and turns every value
// into a typed constant once; [Filter.Match] then evaluates a row image with
// SQL three-valued logic and delivers only when the result is true.
//
// # Errors
//
// Every error returned by [Parse] and [Compile] is a *[Error] whose Error()
// is the text a client sees, with no Go-style prefix:
//   - [Parse] errors carry the real server's "Error parsing `filter` params: "
//     prefix (the real server adds it to every parse failure, including the
//     empty-segment one);
//   - [Compile] errors are the bare database-style exception text (for example
//     `invalid column for filter foo` or `invalid input syntax for type
//     integer: "abc"`); the caller embeds them in its "Unable to subscribe …
//     Exception: …" sentence the way the real server does.
//
// # Semantics and deliberate differences from PostgreSQL
//
// Values are compared by column type (pg_type.typname):
//   - int2/int4/int8 and numeric compare exactly (numeric falls back to
//     math/big.Rat beyond 18 digits), numeric NaN/±Infinity ordered like
//     PostgreSQL;
//   - float4/float8 order NaN above everything and equal to itself, as
//     PostgreSQL does; -0 equals 0;
//   - text-like types (text, varchar, bpchar, name, citext) compare byte-wise,
//     i.e. the C collation, whatever the database's collation is; bpchar
//     ignores trailing spaces for comparisons, while like/match see the
//     row's padding (and a pattern without trailing spaces); citext
//     compares, likes and matches case-insensitively. The real server casts
//     filter values to bare `character` (char(1)) for bpchar columns and so
//     compares only the first character; that defect is not reproduced;
//   - uuid compares the 16 bytes (input case and hyphenation do not matter);
//   - timestamp, timestamptz, date, time and timetz are parsed to instants:
//     a timestamptz without a zone is UTC, a zone on a timestamp/date/time is
//     ignored (as PostgreSQL ignores it), timetz orders like PostgreSQL (UTC
//     time, then zone). Only ISO 8601 / PostgreSQL ISO forms are understood,
//     plus infinity, -infinity and epoch; now, today, tomorrow and yesterday
//     are rejected because they would be re-evaluated on every change;
//   - jsonb supports eq, neq, in and isdistinct by canonical JSON equality
//     (key order and number spelling do not matter); json, like in
//     PostgreSQL, has no equality operator and supports only is.null;
//   - bytea compares bytes (hex or escape input);
//   - arrays (`_int4` style) compare element-wise like PostgreSQL (NULL
//     elements equal each other and sort last); `in` is rejected for them as
//     in the real server;
//   - interval, enums and every other type compare their text for equality
//     only; ordering operators are rejected because the order is unknown here.
//
// like/ilike implement SQL LIKE (% and _, backslash escapes the next
// character); ilike lower-cases both sides rune by rune. Matching never
// backtracks: the value is read once, left to right, in O(len(value) +
// len(pattern)) steps when no `_` sits between two literals of one
// %-separated piece, and in at most 4 steps per value character otherwise:
// such a piece may be at most [MaxLikeWildPiece] characters long (see
// like.go). A longer one, and a pattern ending in an unpaired escape, are
// refused at Compile (PostgreSQL would accept the first, and complains about
// the second only if matching reaches it). Checked against PostgreSQL 15 on 4 000 random
// LIKE/ILIKE cases (testdata/pg15_like.jsonl).
//
// Values are capped at [MaxValueBytes] (each `in` element too) and filters at
// [MaxConditions] conditions, so that the work of one filter on one row is
// bounded whatever the subscriber sends. match/imatch use Go's
// regexp (RE2) instead of PostgreSQL's POSIX ARE engine: back-references,
// lookahead/lookbehind and ARE-only escapes such as \m \M \y are rejected at
// Compile, and RE2 is leftmost-first rather than POSIX leftmost-longest, which
// does not change whether a pattern matches somewhere.
//
// # Concurrency
//
// A compiled *[Filter] is immutable and safe for concurrent use by any number
// of goroutines. Parse and Compile keep no state.
package filter
