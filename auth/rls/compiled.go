package rls

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"unicode"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/decoder"
)

// A compiled policy is a policy expression of one of the common shapes
// (docs/protocol.md §4.5) evaluated in Go on the row image, with
// PostgreSQL's three-valued logic. Only expressions made of these parts
// compile; anything else is evaluated by PostgreSQL:
//
//	true, false, AND, OR, parentheses
//	<uuid col> = auth.uid()           (either side; also ( SELECT auth.uid() AS uid))
//	auth.role() = '<r>'::text         (either side)
//	<text col> = (auth.jwt() ->> '<claim>'::text)   (varchar as (<col>)::text)
//	<text col> = '<literal>'::text
//
// and only when auth.uid(), auth.role() and auth.jwt() have one of the
// standard bodies (see stdBodies).

// tri is an SQL boolean: false, true or NULL.
type tri int8

const (
	triFalse tri = iota
	triTrue
	triNull
)

func triAnd(a, b tri) tri {
	switch {
	case a == triFalse || b == triFalse:
		return triFalse
	case a == triNull || b == triNull:
		return triNull
	}
	return triTrue
}

func triOr(a, b tri) tri {
	switch {
	case a == triTrue || b == triTrue:
		return triTrue
	case a == triNull || b == triNull:
		return triNull
	}
	return triFalse
}

// errNeedSQL means a compiled policy cannot decide for this identity (a
// claim of a shape Go does not model); the group goes to PostgreSQL.
var errNeedSQL = errors.New("rls: compiled policy needs the SQL path")

// node is a compiled boolean expression.
type node struct {
	op   byte // '&' and, '|' or, 'c' constant, '=' comparison
	kids []*node
	val  tri
	l, r operand
}

// operand kinds.
const (
	opCol = iota + 1
	opUID
	opRole
	opClaim
	opLit
)

type operand struct {
	kind int
	name string // column name (opCol), claim key (opClaim), literal (opLit)
	col  int    // index in the relation (opCol), set per relation by bind
	// uuid: the column (opCol) is of type uuid, whose values arrive as
	// uuid_out writes them (canonicalUUID's form); set by bind.
	uuid bool
}

// uuidOID is pg_type.oid of uuid.
const uuidOID = 2950

// evalEnv is what a compiled expression reads besides the row.
type evalEnv struct {
	id     *channels.Identity
	fns    *stdFuncs
	uid    *[16]byte // nil: NULL
	uidStr string    // uid in uuid_out's canonical text, when uid is set
	uidErr error     // auth.uid() raises (bad uuid)
	claims map[string]json.RawMessage
}

// newEvalEnv prepares the identity-dependent values once per group.
func newEvalEnv(id *channels.Identity, fns *stdFuncs) (*evalEnv, error) {
	e := &evalEnv{id: id, fns: fns}
	if len(id.Claims) > 0 {
		if err := json.Unmarshal(id.Claims, &e.claims); err != nil {
			return nil, errNeedSQL
		}
	}
	sub := id.Sub
	if sub == "" && fns.uidFallback {
		s, ok, err := e.claimText("sub")
		if err != nil {
			return nil, err
		}
		if ok {
			sub = s
		}
	}
	if sub != "" {
		u, err := parseUUID(sub)
		if err != nil {
			e.uidErr = err
		} else {
			e.uid = &u
			e.uidStr = canonicalUUID(u)
		}
	}
	return e, nil
}

// claimText is auth.jwt() ->> key: ok false for SQL NULL. Values Go does
// not render exactly as jsonb would (numbers, objects, arrays) need SQL.
func (e *evalEnv) claimText(key string) (string, bool, error) {
	raw, ok := e.claims[key]
	if !ok {
		return "", false, nil
	}
	s := strings.TrimSpace(string(raw))
	switch {
	case s == "null":
		return "", false, nil
	case s == "true" || s == "false":
		return s, true, nil
	case strings.HasPrefix(s, `"`):
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return "", false, errNeedSQL
		}
		return str, true, nil
	}
	return "", false, errNeedSQL
}

// eval evaluates n on one row image (aligned with the relation the node
// was bound to). An error means the expression raises (the group is denied,
// as PostgreSQL would fail the query) or errNeedSQL.
func (n *node) eval(env *evalEnv, row []decoder.Value) (tri, error) {
	switch n.op {
	case 'c':
		return n.val, nil
	case '&', '|':
		acc := triTrue
		if n.op == '|' {
			acc = triFalse
		}
		for _, k := range n.kids {
			v, err := k.eval(env, row)
			if err != nil {
				return 0, err
			}
			if n.op == '&' {
				acc = triAnd(acc, v)
			} else {
				acc = triOr(acc, v)
			}
		}
		return acc, nil
	}
	return n.compare(env, row)
}

func (n *node) compare(env *evalEnv, row []decoder.Value) (tri, error) {
	l, r := n.l, n.r
	if l.kind != opCol && r.kind == opCol {
		l, r = r, l
	}
	switch {
	case l.kind == opRole || r.kind == opRole:
		other := r
		if r.kind == opRole {
			other = l
		}
		if env.id.Role == "" {
			return triNull, nil
		}
		return boolTri(env.id.Role == other.name), nil
	case l.kind != opCol:
		return 0, errNeedSQL
	}
	if l.col < 0 || l.col >= len(row) || row[l.col].Absent {
		return 0, errNeedSQL
	}
	v := row[l.col]
	if v.Null {
		return triNull, nil
	}
	switch r.kind {
	case opUID:
		if env.uidErr != nil {
			return 0, env.uidErr
		}
		if env.uid == nil {
			return triNull, nil
		}
		if l.uuid && len(v.Text) == len(env.uidStr) || isCanonicalUUID(v.Text) {
			// uuid values arrive as uuid_out writes them, so the usual
			// case is a plain text comparison.
			return boolTri(v.Text == env.uidStr), nil
		}
		u, err := parseUUID(v.Text)
		if err != nil {
			return 0, errNeedSQL
		}
		return boolTri(u == *env.uid), nil
	case opClaim:
		s, ok, err := env.claimText(r.name)
		if err != nil {
			return 0, err
		}
		if !ok {
			return triNull, nil
		}
		return boolTri(v.Text == s), nil
	case opLit:
		return boolTri(v.Text == r.name), nil
	}
	return 0, errNeedSQL
}

func boolTri(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

// canonicalUUID renders u as uuid_out does: lower-case hex, 8-4-4-4-12.
func canonicalUUID(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}

// isCanonicalUUID reports whether s is a uuid in canonicalUUID's form,
// the one text that parses to its value and equals canonicalUUID of it.
func isCanonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// parseUUID parses a uuid as PostgreSQL's uuid_in does: 32 hex digits,
// optionally in braces, with an optional hyphen after any group of four.
func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	// The error is built only on failure: this runs per row and subscriber
	// class on the compiled path, and an allocation per call showed as
	// garbage-collection work in profiles.
	bad := func() ([16]byte, error) {
		return [16]byte{}, errors.New("rls: invalid input syntax for type uuid: " + s)
	}
	if strings.HasPrefix(s, "{") {
		if !strings.HasSuffix(s, "}") {
			return bad()
		}
		s = s[1 : len(s)-1]
	}
	var digits [32]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '-' {
			if n == 0 || n%4 != 0 || n == 32 || i+1 == len(s) || s[i-1] == '-' {
				return bad()
			}
			continue
		}
		if n == 32 || !isHex(c) {
			return bad()
		}
		digits[n] = c
		n++
	}
	if n != 32 {
		return bad()
	}
	if _, err := hex.Decode(u[:], digits[:]); err != nil {
		return bad()
	}
	return u, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// stdFuncs records which standard bodies auth.uid/role/jwt have; ok is
// false when any of them is missing or non-standard (nothing compiles).
type stdFuncs struct {
	ok bool
	// uidFallback: auth.uid() falls back to the claims' "sub" when
	// request.jwt.claim.sub is empty.
	uidFallback bool
}

// stdBodies are the bodies (normalized by normBody) of auth.uid(),
// auth.role() and auth.jwt() whose results the compiled evaluator models,
// given that the checker sets request.jwt.claim.sub, .role and .claims.
var stdBodies = map[string]string{
	// Supabase's older definitions.
	"select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid":  "uid",
	"select nullif(current_setting('request.jwt.claim.role', true), '')::text": "role",
	// Supabase's current definitions.
	"select coalesce( nullif(current_setting('request.jwt.claim.sub', true), ''), (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub') )::uuid":   "uid+",
	"select coalesce( nullif(current_setting('request.jwt.claim.role', true), ''), (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role') )::text": "role",
	"select coalesce( nullif(current_setting('request.jwt.claim', true), ''), nullif(current_setting('request.jwt.claims', true), '') )::jsonb":                         "jwt",
	// This project's demo schema (internal/demo/schema.sql).
	"select coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb":                                                   "jwt",
	"select nullif(coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''), auth.jwt() ->> 'sub'), '')::uuid":                     "uid+",
	"select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''), auth.jwt() ->> 'role')":                                     "role",
	"select nullif(coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''), (auth.jwt() ->> 'sub')), '')::uuid":                   "uid+",
	"select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''), (auth.jwt() ->> 'role'))":                                   "role",
	"select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''), auth.jwt() ->> 'role')::text":                               "role",
	"select coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb as jwt":                                            "jwt",
	"select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid as uid":                                                          "uid",
	"select nullif(current_setting('request.jwt.claim.role', true), '')::text as role":                                                        "role",
	"select coalesce(nullif(current_setting('request.jwt.claim', true), ''), nullif(current_setting('request.jwt.claims', true), ''))::jsonb": "jwt",
}

// normBody lowercases a function body, collapses white space and drops a
// trailing semicolon.
func normBody(s string) string {
	s = strings.Join(strings.FieldsFunc(strings.ToLower(s), unicode.IsSpace), " ")
	s = strings.TrimSuffix(strings.TrimSpace(s), ";")
	return s
}

// classifyFuncs decides from the three bodies (empty: missing) whether
// policies may compile. A missing function compiles only if no policy
// calls it, which the parser does not track: all three must be standard.
func classifyFuncs(uid, role, jwt string) *stdFuncs {
	f := &stdFuncs{}
	u, r, j := stdBodies[normBody(uid)], stdBodies[normBody(role)], stdBodies[normBody(jwt)]
	if (u != "uid" && u != "uid+") || r != "role" || j != "jwt" {
		return f
	}
	f.ok, f.uidFallback = true, u == "uid+"
	return f
}

// compileExpr parses a policy expression as pg_get_expr renders it (with
// search_path empty) into a node over the columns of cols (name → type), or
// returns nil when it has another shape.
func compileExpr(expr string, cols map[string]string) *node {
	toks, ok := lex(expr)
	if !ok {
		return nil
	}
	p := &parser{toks: toks, cols: cols}
	n := p.or()
	if n == nil || p.i != len(p.toks) {
		return nil
	}
	return n
}

type parser struct {
	toks []string
	i    int
	cols map[string]string
}

func (p *parser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}

func (p *parser) accept(seq ...string) bool {
	if p.i+len(seq) > len(p.toks) {
		return false
	}
	for k, s := range seq {
		if !strings.EqualFold(p.toks[p.i+k], s) {
			return false
		}
	}
	p.i += len(seq)
	return true
}

func (p *parser) or() *node { return p.chain('|', "OR", p.and) }

func (p *parser) and() *node { return p.chain('&', "AND", p.prim) }

// chain parses next (keyword next)* into one node of op, or next's node
// alone when the keyword does not follow.
func (p *parser) chain(op byte, keyword string, next func() *node) *node {
	n := next()
	if n == nil {
		return nil
	}
	out := &node{op: op, kids: []*node{n}}
	for p.accept(keyword) {
		k := next()
		if k == nil {
			return nil
		}
		out.kids = append(out.kids, k)
	}
	if len(out.kids) == 1 {
		return n
	}
	return out
}

func (p *parser) prim() *node {
	switch {
	case p.accept("true"):
		return &node{op: 'c', val: triTrue}
	case p.accept("false"):
		return &node{op: 'c', val: triFalse}
	}
	start := p.i
	if n := p.cmp(); n != nil {
		return n
	}
	p.i = start
	if p.accept("(") {
		n := p.or()
		if n != nil && p.accept(")") {
			return n
		}
	}
	p.i = start
	return nil
}

func (p *parser) cmp() *node {
	l, ok := p.operand()
	if !ok || !p.accept("=") {
		return nil
	}
	r, ok := p.operand()
	if !ok {
		return nil
	}
	if l.kind == opCol && r.kind == opCol || l.kind != opCol && r.kind != opCol && !(l.kind == opRole && r.kind == opLit || l.kind == opLit && r.kind == opRole) {
		return nil
	}
	a, b := l, r
	if a.kind != opCol {
		a, b = b, a
	}
	if a.kind == opCol {
		typ := p.cols[a.name]
		switch b.kind {
		case opUID:
			if typ != "uuid" || a.col != 0 {
				return nil // col is 1 when it was written (col)::text
			}
		case opClaim, opLit:
			if !(typ == "text" && a.col == 0 || typ == "varchar" && a.col == 1) {
				return nil
			}
		default:
			return nil
		}
	}
	return &node{op: '=', l: l, r: r}
}

// operand parses one side of a comparison; for a column, col is 1 when it
// carried a ::text cast (resolved to a relation index later).
func (p *parser) operand() (operand, bool) {
	start := p.i
	fail := func() (operand, bool) { p.i = start; return operand{}, false }
	if fn := p.fn(); fn != 0 {
		if fn == opClaim {
			return fail() // bare auth.jwt() is jsonb
		}
		return operand{kind: fn}, true
	}
	if s, ok := p.textLit(); ok {
		return operand{kind: opLit, name: s}, true
	}
	if name, ok := p.colName(); ok {
		return operand{kind: opCol, name: name}, true
	}
	if p.accept("(") {
		// ( SELECT auth.uid() AS uid)
		if p.accept("SELECT") {
			fn := p.fn()
			if (fn == opUID || fn == opRole) && p.accept("AS") && isIdent(p.peek()) {
				p.i++
				if p.accept(")") {
					return operand{kind: fn}, true
				}
			}
			return fail()
		}
		// (auth.jwt() ->> 'claim'::text)
		if p.fn() == opClaim && p.accept("->>") {
			if s, ok := p.textLit(); ok && p.accept(")") {
				return operand{kind: opClaim, name: s}, true
			}
			return fail()
		}
		p.i = start + 1
		// (col)::text
		if name, ok := p.colName(); ok && p.accept(")", "::", "text") {
			return operand{kind: opCol, name: name, col: 1}, true
		}
	}
	return fail()
}

// fn parses auth.uid(), auth.role() or auth.jwt() and returns opUID,
// opRole or opClaim (for jwt), or 0.
func (p *parser) fn() int {
	for _, f := range []struct {
		name string
		kind int
	}{{"uid", opUID}, {"role", opRole}, {"jwt", opClaim}} {
		if p.accept("auth", ".", f.name, "(", ")") {
			return f.kind
		}
	}
	return 0
}

// textLit parses '<s>'::text.
func (p *parser) textLit() (string, bool) {
	t := p.peek()
	if len(t) < 2 || t[0] != '\'' {
		return "", false
	}
	if p.i+2 >= len(p.toks) || p.toks[p.i+1] != "::" || p.toks[p.i+2] != "text" {
		return "", false
	}
	p.i += 3
	return strings.ReplaceAll(t[1:len(t)-1], "''", "'"), true
}

// colName parses a column of the policy's table: a bare (or quoted) name
// that names a column, not followed by '(' or '.'.
func (p *parser) colName() (string, bool) {
	t := p.peek()
	name, ok := identName(t)
	if !ok {
		return "", false
	}
	if _, isCol := p.cols[name]; !isCol {
		return "", false
	}
	if p.i+1 < len(p.toks) && (p.toks[p.i+1] == "(" || p.toks[p.i+1] == ".") {
		return "", false
	}
	p.i++
	return name, true
}

func isIdent(t string) bool {
	_, ok := identName(t)
	return ok
}

// identName unquotes an identifier token; keywords are not identifiers.
func identName(t string) (string, bool) {
	if t == "" {
		return "", false
	}
	if t[0] == '"' {
		return strings.ReplaceAll(t[1:len(t)-1], `""`, `"`), true
	}
	c := t[0]
	if !(c == '_' || c >= 'a' && c <= 'z') {
		return "", false
	}
	switch strings.ToLower(t) {
	case "and", "or", "not", "select", "as", "true", "false", "null", "is", "from", "where", "exists", "case":
		return "", false
	}
	return t, true
}

// lex splits a rendered expression into tokens: identifiers, quoted
// identifiers, string literals, numbers, and the punctuation the shapes
// use. Anything else fails (the expression is not compiled).
func lex(s string) ([]string, bool) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\n' || c == '\t':
			i++
		case c == '(' || c == ')' || c == '.' || c == ',' || c == '=':
			toks = append(toks, string(c))
			i++
		case strings.HasPrefix(s[i:], "::"):
			toks = append(toks, "::")
			i += 2
		case strings.HasPrefix(s[i:], "->>"):
			toks = append(toks, "->>")
			i += 3
		case c == '\'' || c == '"':
			j := i + 1
			for {
				if j >= len(s) {
					return nil, false
				}
				if s[j] == c {
					if j+1 < len(s) && s[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			toks = append(toks, s[i:j+1])
			i = j + 1
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
			j := i
			for j < len(s) && (s[j] == '_' || s[j] == '$' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			return nil, false
		}
	}
	return toks, true
}

// bind resolves the column operands of n to indices of rel's columns.
// It returns false when a column is not in rel.
func (n *node) bind(rel *decoder.Relation) (*node, bool) {
	out := *n
	if n.op == '=' {
		for _, o := range []*operand{&out.l, &out.r} {
			if o.kind == opCol {
				o.col = rel.ColumnIndex(o.name)
				if o.col < 0 {
					return nil, false
				}
				o.uuid = rel.Columns[o.col].TypeOID == uuidOID
			}
		}
		return &out, true
	}
	out.kids = make([]*node, len(n.kids))
	for i, k := range n.kids {
		b, ok := k.bind(rel)
		if !ok {
			return nil, false
		}
		out.kids[i] = b
	}
	return &out, true
}
