package filter

import "strconv"

// Op is a filter operator. The zero value is not a valid operator.
type Op int

// The operators of the filter grammar, in the order of the real server's
// realtime.equality_op enum.
const (
	OpEq         Op = iota + 1 // eq: =
	OpNeq                      // neq: !=
	OpLt                       // lt: <
	OpLte                      // lte: <=
	OpGt                       // gt: >
	OpGte                      // gte: >=
	OpIn                       // in: = ANY(list)
	OpLike                     // like: LIKE
	OpILike                    // ilike: ILIKE
	OpIs                       // is: IS {NULL|TRUE|FALSE|UNKNOWN}
	OpMatch                    // match: ~ (regular expression)
	OpIMatch                   // imatch: ~* (case-insensitive regular expression)
	OpIsDistinct               // isdistinct: IS DISTINCT FROM
)

var opNames = [...]string{
	OpEq:         "eq",
	OpNeq:        "neq",
	OpLt:         "lt",
	OpLte:        "lte",
	OpGt:         "gt",
	OpGte:        "gte",
	OpIn:         "in",
	OpLike:       "like",
	OpILike:      "ilike",
	OpIs:         "is",
	OpMatch:      "match",
	OpIMatch:     "imatch",
	OpIsDistinct: "isdistinct",
}

// String returns the operator's wire name ("eq", "isdistinct", …), or
// "Op(n)" for a value that is not an operator.
func (o Op) String() string {
	if o.valid() {
		return opNames[o]
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// valid reports whether o is one of the 13 operators.
func (o Op) valid() bool { return o > 0 && int(o) < len(opNames) }

// opByName maps a wire name to its operator.
func opByName(s string) (Op, bool) {
	for o := OpEq; int(o) < len(opNames); o++ {
		if opNames[o] == s {
			return o, true
		}
	}
	return 0, false
}
