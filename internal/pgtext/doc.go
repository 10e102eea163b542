// Package pgtext parses the PostgreSQL text format of arrays and
// composites (records): the text array_out and record_out print and
// array_in and record_in read.
//
// [ParseArray] splits an array literal such as `{1,NULL,"a b"}`,
// `{{1,2},{3,4}}` or `[0:1]={7,8}` into its element texts and dimension
// lengths; [ParseRecord] splits a record literal such as `(1,"a,b",,"")`
// into its field texts. Element and field texts are returned de-quoted and
// unescaped, still in text form: converting them is up to the caller,
// which knows their types.
//
// # Grammar
//
// Array literals follow PostgreSQL 15 array_in for the inputs the server
// accepts, with one deliberate restriction: an element is either wholly
// double-quoted or wholly unquoted (array_in also accepts `a"b"`, which
// array_out never prints). Whitespace around elements is skipped, a
// backslash makes the next byte literal, an unquoted NULL (any case) is SQL
// NULL, sub-arrays must be rectangular and at most [MaxArrayDepth] deep, and
// only a whole array may be empty. Record literals follow record_out: an
// empty unquoted field is NULL, "" inside quotes is a quote and a backslash
// escapes the next byte; nested values are fields like any other (quoted
// text), so records have no depth of their own.
//
// # Invariants
//
// The parsers never panic, keep no state and are safe for concurrent use.
// Every error they return matches [ErrSyntax] with errors.Is. Returned
// slices are freshly allocated and owned by the caller.
package pgtext
