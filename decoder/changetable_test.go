package decoder

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openrealtime/realtime/internal/pgcluster"
	"github.com/openrealtime/realtime/internal/pglitetest"
)

// ---- helpers ----

// recorder is a Sink that keeps every change it is given.
type noteSink struct {
	mu      sync.Mutex
	changes []Change
	batches int
	fail    error // returned (once) instead of accepting a batch
	signal  chan struct{}
}

func newNoteSink() *noteSink { return &noteSink{signal: make(chan struct{}, 1)} }

func (r *noteSink) sink(ctx context.Context, batch []Change) error {
	r.mu.Lock()
	if err := r.fail; err != nil {
		r.fail = nil
		r.mu.Unlock()
		return err
	}
	r.changes = append(r.changes, batch...)
	r.batches++
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
	return nil
}

func (r *noteSink) snapshot() []Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.changes)
}

// waitFor waits until the recorded changes satisfy done, or fails.
func (r *noteSink) waitFor(t *testing.T, what string, done func([]Change) bool) []Change {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		got := r.snapshot()
		if done(got) {
			return got
		}
		select {
		case <-r.signal:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s; have %d changes: %s", what, len(got), nDescribe(got))
		}
	}
}

// waitN waits for at least n changes and returns them.
func (r *noteSink) waitN(t *testing.T, n int) []Change {
	t.Helper()
	return r.waitFor(t, fmt.Sprintf("%d changes", n), func(c []Change) bool { return len(c) >= n })
}

// waitMarker waits for a change whose column col has text value v.
func (r *noteSink) waitMarker(t *testing.T, col, v string) []Change {
	t.Helper()
	return r.waitFor(t, "marker "+v, func(cs []Change) bool {
		for _, c := range cs {
			if c.New != nil && nText(c, col) == v {
				return true
			}
		}
		return false
	})
}

func nDescribe(cs []Change) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "\n  #%d %s %s.%s new=%s old=%s", c.Position, c.Kind, c.Rel.Schema, c.Rel.Table, nRowJSON(c.Rel, c.New), nRowJSON(c.Rel, c.Old))
	}
	return b.String()
}

// rowJSON renders an image as name:json pairs (absent columns left out).
func nRowJSON(rel *Relation, vals []Value) string {
	if vals == nil {
		return "nil"
	}
	var parts []string
	for i, v := range vals {
		if v.Absent {
			continue
		}
		parts = append(parts, rel.Columns[i].Name+":"+string(v.JSON))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// value returns the named column's value in the change's new image (old
// for DELETE).
func nValue(c Change, col string) Value {
	vals := c.New
	if c.Kind == Delete {
		vals = c.Old
	}
	i := c.Rel.ColumnIndex(col)
	if i < 0 || i >= len(vals) {
		return Value{Absent: true}
	}
	return vals[i]
}

func nText(c Change, col string) string { return nValue(c, col).Text }

// pgliteEnv is a PGlite bridge (cmd/pglite-bridge, or stock pglite-server)
// plus a writer connection, standing for the application's own client.
type pgliteEnv struct {
	srv *pglitetest.Server
	db  *pgx.Conn
}

func newPGlite(t *testing.T) *pgliteEnv {
	t.Helper()
	return newPGliteOpts(t, pglitetest.Options{MaxConnections: 6})
}

func newPGliteOpts(t *testing.T, o pglitetest.Options) *pgliteEnv {
	t.Helper()
	srv := pglitetest.Start(t, o)
	return &pgliteEnv{srv: srv, db: nConnect(t, srv.URL())}
}

// connect opens a writer connection in exec mode (no named statements on
// the shared session).
func nConnect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func nExec(t testing.TB, db *pgx.Conn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func nQueryInt(t testing.TB, db *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	var v int64
	if err := db.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// running is a ChangeTable source running in the background.
type changeTableRun struct {
	n    *ChangeTable
	rec  *noteSink
	stop func()
	up   chan struct{} // receives on every session start
}

// startChangeTable runs a source and waits until its first session delivers.
func startChangeTable(t *testing.T, cfg ChangeTableConfig, rec *noteSink) *changeTableRun {
	t.Helper()
	if cfg.Publication == "" {
		cfg.Publication = "supabase_realtime"
	}
	if cfg.Logger == nil && testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	up := make(chan struct{}, 16)
	cfg.OnState = func(u bool) {
		if u {
			up <- struct{}{}
		}
	}
	n := NewChangeTable(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, rec.sink) }()
	var once sync.Once
	r := &changeTableRun{n: n, rec: rec, up: up}
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(r.stop)
	select {
	case <-up:
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatalf("source did not start; status %+v", n.Status())
	}
	return r
}

// waitConfirmed waits until the source has stored pos as its cursor.
func waitConfirmed(t *testing.T, n *ChangeTable, pos uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for n.Status().ConfirmedPosition < pos {
		if time.Now().After(deadline) {
			t.Fatalf("position %d never confirmed; status %+v", pos, n.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- integration tests against pglite-server ----

// Inserts, updates and deletes made through another connection arrive in
// order with the relation from the catalog and old images cut as the
// replica identity says, including after a switch to FULL.
func TestChangeTableInsertUpdateDelete(t *testing.T) {
	e := newPGlite(t)
	nExec(t, e.db, `CREATE TABLE items (id bigint PRIMARY KEY, title text NOT NULL, price numeric(10,2), done boolean NOT NULL DEFAULT false)`)
	nExec(t, e.db, `CREATE PUBLICATION supabase_realtime FOR TABLE items`)
	var rels []*Relation
	var relMu sync.Mutex
	rec := newNoteSink()
	startChangeTable(t, ChangeTableConfig{DBURL: e.srv.URL(), Retention: time.Hour, OnRelation: func(r *Relation) {
		relMu.Lock()
		rels = append(rels, r)
		relMu.Unlock()
	}}, rec)

	nExec(t, e.db, `INSERT INTO items (id, title, price) VALUES (1, 'one', 10.5)`)
	nExec(t, e.db, `UPDATE items SET title = 'uno', done = true WHERE id = 1`)
	nExec(t, e.db, `UPDATE items SET id = 2 WHERE id = 1`)
	nExec(t, e.db, `DELETE FROM items WHERE id = 2`)
	got := rec.waitN(t, 4)
	if len(got) != 4 {
		t.Fatalf("got %d changes, want 4: %s", len(got), nDescribe(got))
	}
	want := []struct {
		kind     Kind
		new, old string
	}{
		{Insert, `{id:1,title:"one",price:10.50,done:false}`, "nil"},
		{Update, `{id:1,title:"uno",price:10.50,done:true}`, "nil"}, // key unchanged: no old image
		{Update, `{id:2,title:"uno",price:10.50,done:true}`, `{id:1}`},
		{Delete, "nil", `{id:2}`},
	}
	for i, w := range want {
		c := got[i]
		if c.Kind != w.kind || nRowJSON(c.Rel, c.New) != w.new || nRowJSON(c.Rel, c.Old) != w.old {
			t.Errorf("change %d: got %s new=%s old=%s, want %s new=%s old=%s", i, c.Kind,
				nRowJSON(c.Rel, c.New), nRowJSON(c.Rel, c.Old), w.kind, w.new, w.old)
		}
		if i > 0 && c.Position <= got[i-1].Position {
			t.Errorf("positions not increasing: %d then %d", got[i-1].Position, c.Position)
		}
		if c.CommitTime.IsZero() || c.CommitTime.Location() != time.UTC || time.Since(c.CommitTime) > time.Hour || time.Until(c.CommitTime) > time.Hour {
			t.Errorf("change %d: commit time %v", i, c.CommitTime)
		}
	}
	// Key-only old image: non-key columns are absent, as with pgoutput.
	if old := got[3].Old; !old[1].Absent || old[0].Text != "2" {
		t.Errorf("delete old image %+v", old)
	}
	rel := got[0].Rel
	if rel.Schema != "public" || rel.Table != "items" || rel.ReplicaIdentity != 'd' || rel.OID == 0 {
		t.Errorf("relation %+v", rel)
	}
	var cols []string
	for _, c := range rel.Columns {
		cols = append(cols, fmt.Sprintf("%s:%s:%v", c.Name, c.Type, c.Key))
	}
	if s := strings.Join(cols, " "); s != "id:int8:true title:text:false price:numeric:false done:bool:false" {
		t.Errorf("columns %s", s)
	}
	if v := nValue(got[0], "done"); v.Text != "f" || string(v.JSON) != "false" {
		t.Errorf("bool value %+v", v)
	}
	relMu.Lock()
	if len(rels) != 1 || rels[0] != rel {
		t.Errorf("OnRelation got %d relations, want the one the changes use", len(rels))
	}
	relMu.Unlock()

	// REPLICA IDENTITY FULL takes effect with the next change.
	nExec(t, e.db, `ALTER TABLE items REPLICA IDENTITY FULL`)
	nExec(t, e.db, `INSERT INTO items (id, title) VALUES (3, 'three')`)
	nExec(t, e.db, `UPDATE items SET title = 'tres' WHERE id = 3`)
	nExec(t, e.db, `DELETE FROM items WHERE id = 3`)
	got = rec.waitN(t, 7)[4:]
	if got[1].Rel.ReplicaIdentity != 'f' || nRowJSON(got[1].Rel, got[1].Old) != `{id:3,title:"three",price:null,done:false}` ||
		nRowJSON(got[2].Rel, got[2].Old) != `{id:3,title:"tres",price:null,done:false}` {
		t.Errorf("full identity: %s", nDescribe(got))
	}
	relMu.Lock()
	if len(rels) != 2 || rels[1].ReplicaIdentity != 'f' {
		t.Errorf("OnRelation after ALTER: %d relations", len(rels))
	}
	relMu.Unlock()

	// An unprivileged writer (SET LOCAL ROLE, as under RLS) is captured:
	// the trigger writes the log with its owner's rights.
	nExec(t, e.db, `CREATE ROLE item_writer NOLOGIN`)
	nExec(t, e.db, `GRANT INSERT ON items TO item_writer`)
	nExec(t, e.db, `BEGIN`)
	nExec(t, e.db, `SET LOCAL ROLE item_writer`)
	nExec(t, e.db, `INSERT INTO items (id, title) VALUES (4, 'by item_writer')`)
	nExec(t, e.db, `COMMIT`)
	if got := rec.waitN(t, 8); nText(got[7], "title") != "by item_writer" {
		t.Errorf("unprivileged writer: %s", nDescribe(got[7:]))
	}
}

// Values are rendered from jsonb as docs/protocol.md §4.3 prescribes, the same
// as the logical source renders the text form, whatever the session's
// settings are.
func TestChangeTableValues(t *testing.T) {
	e := newPGlite(t)
	nExec(t, e.db, `CREATE TYPE mood AS ENUM ('sad', 'happy')`)
	nExec(t, e.db, `CREATE TYPE pair AS (a int, b text)`)
	nExec(t, e.db, `CREATE DOMAIN short_text AS text`)
	nExec(t, e.db, `CREATE TABLE vals (
		id int PRIMARY KEY, i2 int2, i8 int8, num numeric, f8 float8, f8nan float8, b bool,
		t text, vc varchar(10), ch char(5), chs char(3)[], u uuid, ts timestamp, tstz timestamptz,
		d date, tm time, iv interval, jb jsonb, js json, ia int4[], ta text[], by bytea, m mood,
		p pair, dom short_text, nothing text)`)
	nExec(t, e.db, `CREATE PUBLICATION supabase_realtime FOR TABLE vals`)
	rec := newNoteSink()
	startChangeTable(t, ChangeTableConfig{DBURL: e.srv.URL()}, rec)

	// A writer with unusual session settings (on PGlite they are every
	// client's): the capture trigger must not depend on them.
	nExec(t, e.db, `SET TimeZone = 'Asia/Tokyo'`)
	nExec(t, e.db, `SET IntervalStyle = 'iso_8601'`)
	nExec(t, e.db, `SET extra_float_digits = 0`)
	t.Cleanup(func() { e.db.Exec(context.Background(), "RESET ALL") })
	nExec(t, e.db, `INSERT INTO vals VALUES (1, -7, 9007199254740993, 1.50e3, 0.1, 'NaN', true,
		e'quote " back \\ nl \n', 'vc', 'abcde', '{ab,c}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
		'2024-05-01 12:00:00.5', '2024-05-01 12:00:00+02', '2024-05-01', '12:34:56', '1 day 2 hours',
		'{"b": 1, "a": [1, 2]}', '{"b":1,  "a":2}', '{1,NULL,3}', '{"x y",NULL}', '\x01ff', 'happy',
		ROW(1, 'x'), 'dom', NULL)`)
	nExec(t, e.db, `RESET ALL`)
	got := rec.waitN(t, 1)
	c := got[0]
	want := map[string][2]string{ // column: JSON, Text
		"id":      {`1`, `1`},
		"i2":      {`-7`, `-7`},
		"i8":      {`9007199254740993`, `9007199254740993`},
		"num":     {`1500`, `1500`},
		"f8":      {`0.1`, `0.1`},
		"f8nan":   {`"NaN"`, `NaN`},
		"b":       {`true`, `t`},
		"t":       {`"quote \" back \\ nl \n"`, "quote \" back \\ nl \n"},
		"vc":      {`"vc"`, `vc`},
		"ch":      {`"a"`, `abcde`},
		"chs":     {`["a","c"]`, `["ab ", "c  "]`},
		"u":       {`"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, `a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`},
		"ts":      {`"2024-05-01T12:00:00.5"`, `2024-05-01T12:00:00.5`},
		"tstz":    {`"2024-05-01T10:00:00+00:00"`, `2024-05-01T10:00:00+00:00`},
		"d":       {`"2024-05-01"`, `2024-05-01`},
		"tm":      {`"12:34:56"`, `12:34:56`},
		"iv":      {`"1 day 02:00:00"`, `1 day 02:00:00`},
		"jb":      {`{"a": [1, 2], "b": 1}`, `{"a": [1, 2], "b": 1}`},
		"js":      {`{"a": 2, "b": 1}`, `{"a": 2, "b": 1}`},
		"ia":      {`[1, null, 3]`, `[1, null, 3]`},
		"ta":      {`["x y", null]`, `["x y", null]`},
		"by":      {`"\\x01ff"`, `\x01ff`},
		"m":       {`"happy"`, `happy`},
		"p":       {`{"a": 1, "b": "x"}`, `{"a": 1, "b": "x"}`},
		"dom":     {`"dom"`, `dom`},
		"nothing": {`null`, ``},
	}
	for col, w := range want {
		v := nValue(c, col)
		if v.Absent || string(v.JSON) != w[0] || v.Text != w[1] {
			t.Errorf("%s: JSON %s Text %q (absent %v), want %s %q", col, v.JSON, v.Text, v.Absent, w[0], w[1])
		}
	}
	if v := nValue(c, "nothing"); !v.Null {
		t.Errorf("NULL column not Null: %+v", v)
	}
	types := map[string]string{}
	for _, col := range c.Rel.Columns {
		types[col.Name] = col.Type
	}
	for col, typ := range map[string]string{"chs": "_bpchar", "m": "mood", "p": "pair", "dom": "short_text", "tstz": "timestamptz", "ia": "_int4"} {
		if types[col] != typ {
			t.Errorf("column %s type %q, want %q", col, types[col], typ)
		}
	}

	// The logical source renders PostgreSQL's text form with Render; both
	// must agree (json aside: there the reference server normalises too,
	// as to_jsonb does, while Render keeps the text).
	tc := NewTypeCache()
	for i, col := range c.Rel.Columns {
		if col.Name == "js" || col.Name == "nothing" {
			continue
		}
		var txt string
		err := e.db.QueryRow(context.Background(), `SELECT `+pgx.Identifier{col.Name}.Sanitize()+`::text FROM (SELECT * FROM vals) v`).Scan(&txt)
		if err != nil {
			t.Fatal(err)
		}
		typ, err := tc.Get(context.Background(), e.db, col.TypeOID)
		if err != nil {
			t.Fatal(err)
		}
		// PGlite's defaults are the settings Render expects (UTC, ISO,
		// postgres interval style).
		if r := Render(txt, typ); !nJSONEqual(r, c.New[i].JSON) {
			t.Errorf("%s: logical renders %s, notify %s", col.Name, r, c.New[i].JSON)
		}
	}
}

// jsonEqual compares JSON texts ignoring whitespace and key order.
func nJSONEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// A row far beyond the 8000-byte notification limit is delivered whole,
// between small ones, on insert, update and delete.
func TestChangeTableLargeRow(t *testing.T) {
	e := newPGlite(t)
	nExec(t, e.db, `CREATE TABLE docs (id int PRIMARY KEY, body text)`)
	nExec(t, e.db, `ALTER TABLE docs REPLICA IDENTITY FULL`)
	nExec(t, e.db, `CREATE PUBLICATION supabase_realtime FOR TABLE docs`)
	rec := newNoteSink()
	startChangeTable(t, ChangeTableConfig{DBURL: e.srv.URL()}, rec)
	big := strings.Repeat("€x", 10000) // 40000 bytes
	nExec(t, e.db, `INSERT INTO docs VALUES (1, 'small')`)
	nExec(t, e.db, `INSERT INTO docs VALUES (2, $1)`, big)
	nExec(t, e.db, `INSERT INTO docs VALUES (3, 'small too')`)
	nExec(t, e.db, `UPDATE docs SET body = body || '!' WHERE id = 2`)
	nExec(t, e.db, `DELETE FROM docs WHERE id = 2`)
	got := rec.waitN(t, 5)
	if len(got) != 5 {
		t.Fatalf("%d changes", len(got))
	}
	if nText(got[0], "body") != "small" || nText(got[2], "body") != "small too" {
		t.Errorf("small rows: %s", nDescribe(got))
	}
	if b := nText(got[1], "body"); b != big {
		t.Errorf("insert: body of %d bytes, want %d", len(b), len(big))
	}
	if b := nText(got[3], "body"); b != big+"!" || got[3].Old[1].Text != big {
		t.Errorf("update: new %d bytes, old %d bytes", len(b), len(got[3].Old[1].Text))
	}
	if got[4].Kind != Delete || nText(got[4], "body") != big+"!" {
		t.Errorf("delete: %d bytes", len(nText(got[4], "body")))
	}
	if string(nValue(got[1], "body").JSON) != string(appendJSONString(nil, big)) {
		t.Error("insert: JSON of the big body differs")
	}
}

// A stopped service resumes exactly after the last delivered change: rows
// written while it was down arrive once, earlier ones never again, and the
// durable cursor holds the last id.
func TestChangeTableRestartResumesExactlyOnce(t *testing.T) {
	e := newPGlite(t)
	nExec(t, e.db, `CREATE TABLE ev (id int PRIMARY KEY, note text)`)
	nExec(t, e.db, `CREATE PUBLICATION supabase_realtime FOR TABLE ev`)
	rec := newNoteSink()
	r := startChangeTable(t, ChangeTableConfig{DBURL: e.srv.URL(), Retention: time.Hour}, rec)
	for i := 1; i <= 3; i++ {
		nExec(t, e.db, `INSERT INTO ev VALUES ($1, 'before')`, i)
	}
	rec.waitN(t, 3)
	r.stop()
	lastBefore := r.n.Status().ConfirmedPosition
	if c := nQueryInt(t, e.db, `SELECT last_id FROM realtime.change_cursor WHERE name = 'supabase_realtime'`); uint64(c) != lastBefore || c == 0 {
		t.Fatalf("durable cursor %d, source confirmed %d", c, lastBefore)
	}

	// Written while no consumer runs: one transaction of three, a rolled
	// back one (a gap in the ids), an update and a delete.
	nExec(t, e.db, `BEGIN`)
	for i := 4; i <= 6; i++ {
		nExec(t, e.db, `INSERT INTO ev VALUES ($1, 'while down')`, i)
	}
	nExec(t, e.db, `COMMIT`)
	nExec(t, e.db, `BEGIN`)
	nExec(t, e.db, `INSERT INTO ev VALUES (99, 'rolled back')`)
	nExec(t, e.db, `ROLLBACK`)
	nExec(t, e.db, `UPDATE ev SET note = 'updated while down' WHERE id = 1`)
	nExec(t, e.db, `DELETE FROM ev WHERE id = 2`)

	rec2 := newNoteSink()
	r2 := startChangeTable(t, ChangeTableConfig{DBURL: e.srv.URL(), Retention: time.Hour}, rec2)
	nExec(t, e.db, `INSERT INTO ev VALUES (100, 'marker')`)
	got := rec2.waitMarker(t, "note", "marker")
	var seen []string
	for _, c := range got {
		seen = append(seen, fmt.Sprintf("%s:%s", c.Kind, nValue(c, "id").Text))
		if c.Position <= lastBefore {
			t.Errorf("change %d redelivered (cursor was %d)", c.Position, lastBefore)
		}
	}
	if s := strings.Join(seen, " "); s != "INSERT:4 INSERT:5 INSERT:6 UPDATE:1 DELETE:2 INSERT:100" {
		t.Fatalf("after restart got %s", s)
	}
	// Changes of one transaction share its transaction id. (Status counts
	// after the cursor moved, which may be just after the sink returned.)
	r2.stop()
	if st := r2.n.Status(); st.Changes != 6 || st.Transactions != 4 {
		t.Errorf("status counts %d changes in %d transactions, want 6 in 4", st.Changes, st.Transactions)
	}
	if got[0].CommitTime != got[2].CommitTime {
		t.Errorf("one transaction, two commit times: %v %v", got[0].CommitTime, got[2].CommitTime)
	}
}

// The source survives a restart of pglite-server (same data directory):
// it reconnects, resumes from the durable cursor and loses nothing.
func TestChangeTableServerRestart(t *testing.T) {
	e := newPGlite(t)
	nExec(t, e.db, `CREATE TABLE ev (id int PRIMARY KEY)`)
	nExec(t, e.db, `CREATE PUBLICATION supabase_realtime FOR TABLE ev`)
	rec := newNoteSink()
	r := startChangeTable(t, ChangeTableConfig{DBURL: e.srv.URL(), RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}, rec)
	nExec(t, e.db, `INSERT INTO ev VALUES (1)`)
	first := rec.waitN(t, 1)[0]
	// The cursor moves just after the sink returns; a restart in between
	// would (correctly) deliver the change again.
	waitConfirmed(t, r.n, first.Position)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	db := nConnect(t, e.srv.URL())
	for i := 2; i <= 5; i++ {
		nExec(t, db, `INSERT INTO ev VALUES ($1)`, i)
	}
	got := rec.waitN(t, 5)
	var ids []string
	for _, c := range got {
		ids = append(ids, nText(c, "id"))
	}
	if s := strings.Join(ids, ","); s != "1,2,3,4,5" {
		t.Fatalf("got %s", s)
	}
	select {
	case <-r.up: // the first session's signal was consumed by startChangeTable
	case <-time.After(30 * time.Second):
		t.Fatal("no second session")
	}
	if st := r.n.Status(); st.Sessions < 2 || st.LastError == "" {
		t.Errorf("status after reconnect: %+v", st)
	}
}

// A sink error makes the batch come again; the cursor does not move past
// an undelivered change.
func TestChangeTableSinkErrorRedelivers(t *testing.T) {
	e := newPGlite(t)
	nExec(t, e.db, `CREATE TABLE ev (id int PRIMARY KEY)`)
	nExec(t, e.db, `CREATE PUBLICATION supabase_realtime FOR TABLE ev`)
	rec := newNoteSink()
	rec.fail = fmt.Errorf("fan-out failed")
	startChangeTable(t, ChangeTableConfig{DBURL: e.srv.URL(), RetryMin: 10 * time.Millisecond}, rec)
	nExec(t, e.db, `INSERT INTO ev VALUES (1)`)
	got := rec.waitN(t, 1)
	if len(got) != 1 || nText(got[0], "id") != "1" {
		t.Fatalf("got %s", nDescribe(got))
	}
}

// A table added to the publication while the source runs is captured from
// that moment (the event trigger installs its trigger in the same
// transaction); one removed loses its trigger; and without the event
// trigger the periodic catalog read installs it.
func TestChangeTableTableAddedAtRunTime(t *testing.T) {
	e := newPGlite(t)
	nExec(t, e.db, `CREATE TABLE first (id int PRIMARY KEY, v text)`)
	nExec(t, e.db, `CREATE PUBLICATION supabase_realtime FOR TABLE first`)
	rec := newNoteSink()
	startChangeTable(t, ChangeTableConfig{DBURL: e.srv.URL(), SyncInterval: 50 * time.Millisecond}, rec)
	hasTrigger := func(table string) bool {
		return nQueryInt(t, e.db, `SELECT count(*) FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = 'realtime_capture'`, table) == 1
	}

	nExec(t, e.db, `CREATE TABLE late (id int PRIMARY KEY, v text)`)
	if hasTrigger("late") {
		t.Fatal("unpublished table captured")
	}
	// Publish and write in one transaction: nothing may slip through.
	nExec(t, e.db, `BEGIN`)
	nExec(t, e.db, `ALTER PUBLICATION supabase_realtime ADD TABLE late`)
	nExec(t, e.db, `INSERT INTO late VALUES (1, 'at once')`)
	nExec(t, e.db, `COMMIT`)
	got := rec.waitN(t, 1)
	if got[0].Rel.Table != "late" || nText(got[0], "v") != "at once" {
		t.Fatalf("got %s", nDescribe(got))
	}

	nExec(t, e.db, `ALTER PUBLICATION supabase_realtime DROP TABLE late`)
	if hasTrigger("late") {
		t.Error("trigger kept on a table that left the publication")
	}
	nExec(t, e.db, `INSERT INTO late VALUES (2, 'unpublished')`)

	// Without the event trigger (e.g. no superuser), the catalog read
	// every SyncInterval installs the trigger.
	nExec(t, e.db, `DROP EVENT TRIGGER realtime_capture_ddl`)
	nExec(t, e.db, `CREATE TABLE later (id int PRIMARY KEY, v text)`)
	nExec(t, e.db, `ALTER PUBLICATION supabase_realtime ADD TABLE later`)
	deadline := time.Now().Add(30 * time.Second)
	for !hasTrigger("later") {
		if time.Now().After(deadline) {
			t.Fatal("no trigger on later")
		}
		time.Sleep(20 * time.Millisecond)
	}
	nExec(t, e.db, `INSERT INTO later VALUES (1, 'polled')`)
	nExec(t, e.db, `INSERT INTO first VALUES (1, 'marker')`)
	got = rec.waitMarker(t, "v", "marker")
	var seen []string
	for _, c := range got {
		seen = append(seen, c.Rel.Table+":"+nText(c, "v"))
	}
	if s := strings.Join(seen, " "); s != "late:at once later:polled first:marker" {
		t.Fatalf("got %s", s)
	}
}

// Delivered rows are pruned after the retention, but never before every
// consumer has passed them.
func TestChangeTablePrune(t *testing.T) {
	e := newPGlite(t)
	nExec(t, e.db, `CREATE TABLE ev (id int PRIMARY KEY, v text)`)
	nExec(t, e.db, `CREATE PUBLICATION supabase_realtime FOR TABLE ev`)
	count := func() int64 { return nQueryInt(t, e.db, `SELECT count(*) FROM realtime.change_log`) }

	// A retention of an hour keeps delivered rows.
	rec := newNoteSink()
	r := startChangeTable(t, ChangeTableConfig{DBURL: e.srv.URL(), Retention: time.Hour}, rec)
	nExec(t, e.db, `INSERT INTO ev VALUES (1, 'a'), (2, 'b')`)
	nExec(t, e.db, `INSERT INTO ev VALUES (3, 'marker')`)
	rec.waitMarker(t, "v", "marker")
	r.stop()
	if c := count(); c != 3 {
		t.Fatalf("retention 1h: %d rows left, want 3", c)
	}

	// A second consumer that lags behind holds rows back.
	nExec(t, e.db, `INSERT INTO realtime.change_cursor (name, publication, last_id) VALUES ('laggard', 'supabase_realtime', 1)`)
	rec = newNoteSink()
	r = startChangeTable(t, ChangeTableConfig{DBURL: e.srv.URL(), SyncInterval: 20 * time.Millisecond}, rec)
	nExec(t, e.db, `INSERT INTO ev VALUES (4, 'marker2')`)
	got := rec.waitMarker(t, "v", "marker2")
	waitConfirmed(t, r.n, got[len(got)-1].Position)
	if c := nQueryInt(t, e.db, `SELECT count(*) FROM realtime.change_log WHERE id > 1`); c != 3 {
		t.Fatalf("rows past the laggard's cursor: %d, want 3", c)
	}
	if c := count(); c != 3 {
		t.Fatalf("retention 0 with a laggard: %d rows, want 3", c)
	}

	// Once it is gone, the running source prunes everything delivered.
	nExec(t, e.db, `DELETE FROM realtime.change_cursor WHERE name = 'laggard'`)
	deadline := time.Now().Add(30 * time.Second)
	for count() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("retention 0: %d rows never pruned", count())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A publication's column list restricts the relation and the images, and
// generated columns are left out, as pgoutput does.
func TestChangeTableColumnList(t *testing.T) {
	e := newPGlite(t)
	nExec(t, e.db, `CREATE TABLE cl (id int PRIMARY KEY, a text, hidden text, twice int GENERATED ALWAYS AS (id * 2) STORED)`)
	nExec(t, e.db, `CREATE TABLE gen (id int PRIMARY KEY, twice int GENERATED ALWAYS AS (id * 2) STORED)`)
	nExec(t, e.db, `CREATE PUBLICATION supabase_realtime FOR TABLE cl (id, a), gen`)
	rec := newNoteSink()
	startChangeTable(t, ChangeTableConfig{DBURL: e.srv.URL()}, rec)
	nExec(t, e.db, `INSERT INTO cl VALUES (1, 'shown', 'secret')`)
	nExec(t, e.db, `INSERT INTO gen VALUES (7)`)
	got := rec.waitN(t, 2)
	if s := nRowJSON(got[0].Rel, got[0].New); s != `{id:1,a:"shown"}` || len(got[0].Rel.Columns) != 2 {
		t.Errorf("column list: %s", s)
	}
	if s := nRowJSON(got[1].Rel, got[1].New); s != `{id:7}` {
		t.Errorf("generated column: %s", s)
	}
}

// The source leaves the shared session as it found it: on stock
// pglite-server its probe finds that notifications do not reach it, so it
// stops listening; no prepared statements, role or settings remain, and
// the publication's actions are honoured.
func TestChangeTableSharedSessionHygiene(t *testing.T) {
	e := newPGliteOpts(t, pglitetest.Options{MaxConnections: 6, Stock: true})
	nExec(t, e.db, `CREATE TABLE ev (id int PRIMARY KEY)`)
	nExec(t, e.db, `CREATE PUBLICATION supabase_realtime FOR TABLE ev WITH (publish = 'insert, delete')`)
	rec := newNoteSink()
	r := startChangeTable(t, ChangeTableConfig{DBURL: e.srv.URL()}, rec)
	deadline := time.Now().Add(60 * time.Second)
	for r.n.probed.Load() == probePending {
		if time.Now().After(deadline) {
			t.Fatal("probe never concluded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p := r.n.probed.Load(); p != probeLost {
		t.Fatalf("probe outcome %d: stock pglite-server delivered a notification to a listener", p)
	}
	if c := nQueryInt(t, e.db, `SELECT count(*) FROM pg_listening_channels()`); c != 0 {
		t.Errorf("still listening on %d channels after the probe", c)
	}
	nExec(t, e.db, `INSERT INTO ev VALUES (1)`)
	nExec(t, e.db, `UPDATE ev SET id = 2`)
	nExec(t, e.db, `DELETE FROM ev`)
	got := rec.waitN(t, 2)
	if len(got) != 2 || got[0].Kind != Insert || got[1].Kind != Delete {
		t.Fatalf("publish = 'insert, delete': got %s", nDescribe(got))
	}
	r.stop()
	for q, want := range map[string]string{
		`SELECT count(*)::text FROM pg_listening_channels()`: "0",
		`SELECT count(*)::text FROM pg_prepared_statements`:  "0",
		`SELECT current_user::text`:                          "postgres",
		`SELECT current_setting('TimeZone')`:                 "UTC",
		`SELECT current_setting('IntervalStyle')`:            "postgres",
	} {
		var v string
		if err := e.db.QueryRow(context.Background(), q).Scan(&v); err != nil || v != want {
			t.Errorf("%s = %q (%v), want %q", q, v, err, want)
		}
	}
}

// On a server that delivers notifications to listeners (here PostgreSQL
// itself, as PGlite behind a fan-out bridge would), the source wakes on
// them: with an hour-long poll interval, changes of any size still arrive.
// A forged notification only wakes it: what it delivers comes from the log.
func TestChangeTableWakesOnNotification(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Stop() })
	db := nConnect(t, cluster.URL(""))
	nExec(t, db, `CREATE TABLE ev (id int PRIMARY KEY, body text)`)
	nExec(t, db, `CREATE PUBLICATION supabase_realtime FOR TABLE ev`)
	rec := newNoteSink()
	r := startChangeTable(t, ChangeTableConfig{DBURL: cluster.URL(""), PollInterval: time.Hour, SyncInterval: time.Hour}, rec)
	deadline := time.Now().Add(60 * time.Second)
	for r.n.probed.Load() == probePending {
		if time.Now().After(deadline) {
			t.Fatal("probe never concluded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p := r.n.probed.Load(); p != probeDelivered {
		t.Fatalf("probe outcome %d on PostgreSQL", p)
	}
	nExec(t, db, `INSERT INTO ev VALUES (1, 'small')`)
	nExec(t, db, `INSERT INTO ev VALUES (2, 'small'), (3, 'small')`)
	big := strings.Repeat("b", 9000)
	nExec(t, db, `INSERT INTO ev VALUES (4, $1)`, big)
	nExec(t, db, `SELECT pg_notify('realtime_changes', '{"id": 1000000, "schema": "public", "table": "ev", "op": "I", "new": {"id": 666, "body": "forged"}}')`)
	nExec(t, db, `INSERT INTO ev VALUES (5, 'marker')`)
	got := rec.waitMarker(t, "body", "marker")
	var ids []string
	for _, c := range got {
		ids = append(ids, nText(c, "id"))
	}
	if s := strings.Join(ids, ","); s != "1,2,3,4,5" {
		t.Fatalf("got %s", s)
	}
	if nText(got[3], "body") != big {
		t.Errorf("big row: %d bytes", len(nText(got[3], "body")))
	}
}

// Through cmd/pglite-bridge, which relays notifications to listening
// sockets, the probe succeeds and the source wakes on each commit: with an
// hour-long poll interval every change, from any writer, still arrives.
func TestChangeTableBridgeWakesWithoutPolling(t *testing.T) {
	e := newPGlite(t)
	nExec(t, e.db, `CREATE TABLE ev (id int PRIMARY KEY, body text)`)
	nExec(t, e.db, `CREATE PUBLICATION supabase_realtime FOR TABLE ev`)
	rec := newNoteSink()
	r := startChangeTable(t, ChangeTableConfig{DBURL: e.srv.URL(), PollInterval: time.Hour, SyncInterval: time.Hour}, rec)
	deadline := time.Now().Add(60 * time.Second)
	for r.n.probed.Load() == probePending {
		if time.Now().After(deadline) {
			t.Fatal("probe never concluded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p := r.n.probed.Load(); p != probeDelivered {
		t.Fatalf("probe outcome %d through cmd/pglite-bridge: notifications do not reach the source", p)
	}
	other := nConnect(t, e.srv.URL())
	for i := 1; i <= 20; i++ {
		w := e.db
		if i%2 == 0 {
			w = other
		}
		nExec(t, w, `INSERT INTO ev VALUES ($1, 'row')`, i)
		// Each commit alone must wake the source: wait for it before the next.
		got := rec.waitN(t, i)
		if n := nText(got[i-1], "id"); n != strconv.Itoa(i) {
			t.Fatalf("change %d has id %s", i, n)
		}
	}
}

// ---- unit tests ----

func TestChangeTableJSONBValue(t *testing.T) {
	bp := BuiltinType("bpchar")
	for _, tc := range []struct {
		raw       string
		typ       *TypeInfo
		json, txt string
		null      bool
	}{
		{`null`, BuiltinType("int4"), `null`, ``, true},
		{`42`, BuiltinType("int4"), `42`, `42`, false},
		{`true`, BuiltinType("bool"), `true`, `t`, false},
		{`false`, BuiltinType("bool"), `false`, `f`, false},
		{`true`, BuiltinType("jsonb"), `true`, `true`, false},
		{`"123"`, BuiltinType("jsonb"), `"123"`, `"123"`, false},
		{`"a\"b"`, BuiltinType("text"), `"a\"b"`, `a"b`, false},
		{`"abc  "`, bp, `"a"`, `abc  `, false},
		{`"€uro"`, bp, `"€"`, `€uro`, false},
		{`["ab", null, ["cd"]]`, BuiltinType("_bpchar"), `["a",null,["c"]]`, `["ab", null, ["cd"]]`, false},
		{`"abc"`, &TypeInfo{OID: 90000, Name: "dom", Kind: 'd', Base: bp}, `"abc"`, `abc`, false},
		{`{"a": 1}`, &TypeInfo{OID: 90001, Name: "jdom", Kind: 'd', Base: BuiltinType("jsonb")}, `{"a": 1}`, `{"a": 1}`, false},
		{`[1, 2]`, BuiltinType("_int4"), `[1, 2]`, `[1, 2]`, false},
		{`"x"`, nil, `"x"`, `x`, false},
	} {
		v := jsonbValue(json.RawMessage(tc.raw), tc.typ)
		if string(v.JSON) != tc.json || v.Text != tc.txt || v.Null != tc.null || v.Absent {
			t.Errorf("%s as %v: got JSON %s Text %q null %v", tc.raw, tc.typ, v.JSON, v.Text, v.Null)
		}
	}
}

func TestChangeTablePruneMarks(t *testing.T) {
	n := NewChangeTable(ChangeTableConfig{Publication: "p", Retention: 10 * time.Second})
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	n.addMark(10, t0)
	n.addMark(20, t0.Add(500*time.Millisecond)) // merged into the first mark
	n.addMark(30, t0.Add(2*time.Second))
	n.addMark(25, t0.Add(3*time.Second)) // not newer: ignored
	if len(n.marks) != 2 || n.marks[0].id != 20 || n.marks[1].id != 30 {
		t.Fatalf("marks %+v", n.marks)
	}
	for _, tc := range []struct {
		at   time.Duration
		want uint64
		sql  bool
	}{{9 * time.Second, 0, false}, {10500 * time.Millisecond, 20, true}, {12 * time.Second, 30, true}} {
		sql := n.pruneSQL(t0.Add(tc.at))
		if n.matured != tc.want || (sql != "") != tc.sql {
			t.Errorf("at %v: matured %d (sql %q), want %d", tc.at, n.matured, sql, tc.want)
		}
	}
	if len(n.marks) != 0 {
		t.Fatalf("marks left: %+v", n.marks)
	}
	// Another consumer held rows back: pruning stays due until it passes.
	n.pruned = 25
	if n.pruneSQL(t0.Add(time.Hour)) == "" {
		t.Error("nothing to prune while rows up to 30 remain")
	}
	n.pruned = 30
	if sql := n.pruneSQL(t0.Add(time.Hour)); sql != "" {
		t.Errorf("pruned everything, still %q", sql)
	}
}

// ---- benchmark ----

// BenchmarkChangeTablePGlite measures the notify source on pglite-server: b.N
// rows inserted by one writer connection (perStmt rows per autocommit
// INSERT, paced to rate rows/s or as fast as possible when 0), delivered to
// a sink. It reports the sustained delivery rate and the latency from the
// writer's commit acknowledgement to the sink. Run with a fixed count, e.g.
//
//	go test -run '^$' -bench NotifyPGlite -benchtime 20000x ./decoder/
func BenchmarkChangeTablePGlite(b *testing.B) {
	for _, bc := range []struct {
		name    string
		perStmt int
		rate    float64
		poll    time.Duration
	}{
		{"bridge=stock/rows=1/rate=max/poll=100ms", 1, 0, 100 * time.Millisecond},
		{"bridge=stock/rows=100/rate=max/poll=100ms", 100, 0, 100 * time.Millisecond},
		{"bridge=stock/rows=1/rate=500/poll=100ms", 1, 500, 100 * time.Millisecond},
		{"bridge=stock/rows=1/rate=500/poll=20ms", 1, 500, 20 * time.Millisecond},
		{"bridge=stock/rows=1/rate=200/poll=100ms", 1, 200, 100 * time.Millisecond},
		{"bridge=relay/rows=1/rate=max/poll=100ms", 1, 0, 100 * time.Millisecond},
		{"bridge=relay/rows=100/rate=max/poll=100ms", 100, 0, 100 * time.Millisecond},
		{"bridge=relay/rows=1/rate=200/poll=100ms", 1, 200, 100 * time.Millisecond},
		// The relay bridge with the source polling: what listening costs.
		{"bridge=relay/rows=1/rate=max/poll=100ms/listen=off", 1, 0, 100 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchNotify(b, bc.perStmt, bc.rate, bc.poll, !strings.HasSuffix(bc.name, "/listen=off"))
		})
	}
}

func benchNotify(b *testing.B, perStmt int, rate float64, poll time.Duration, listen bool) {
	// bridge=stock is pglite-server (the source polls); bridge=relay is
	// cmd/pglite-bridge (it wakes on each commit).
	srv := pglitetest.Start(b, pglitetest.Options{MaxConnections: 4, Stock: strings.Contains(b.Name(), "bridge=stock/")})
	db := nConnect(b, srv.URL())
	nExec(b, db, `CREATE TABLE bench (id bigint PRIMARY KEY, body text NOT NULL)`)
	nExec(b, db, `CREATE PUBLICATION supabase_realtime FOR TABLE bench`)

	total := b.N
	var mu sync.Mutex
	acked := make([]time.Time, total+1)    // commit acknowledged to the writer
	received := make([]time.Time, total+1) // handed to the sink
	var lastAt time.Time
	got, reads := 0, 0 // reads: sink calls, one per read that found changes
	done := make(chan struct{})
	sink := func(ctx context.Context, batch []Change) error {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range batch {
			var id int
			fmt.Sscan(nText(c, "id"), &id)
			if id >= 1 && id <= total && received[id].IsZero() {
				received[id] = now
				got++
			}
		}
		lastAt = now
		reads++
		if got == total {
			close(done)
		}
		return nil
	}
	up := make(chan struct{}, 4)
	n := NewChangeTable(ChangeTableConfig{DBURL: srv.URL(), Publication: "supabase_realtime", PollInterval: poll, Retention: time.Minute, NoListen: !listen,
		OnState: func(u bool) {
			if u {
				up <- struct{}{}
			}
		}})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { n.Run(ctx, sink); close(runDone) }()
	defer func() { cancel(); <-runDone }()
	<-up

	mu.Lock()
	reads = 0
	mu.Unlock()
	cpu0, cpuErr := srv.CPUTime()
	b.ResetTimer()
	start := time.Now()
	body := strings.Repeat("x", 100)
	for id := 1; id <= total; id += perStmt {
		k := min(perStmt, total-id+1)
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(id-1) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		if _, err := db.Exec(context.Background(), `INSERT INTO bench SELECT g, $2 FROM generate_series($1::bigint, $1::bigint + $3 - 1) g`, id, body, k); err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		mu.Lock()
		for j := id; j < id+k; j++ {
			acked[j] = now
		}
		mu.Unlock()
	}
	written := time.Since(start)
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		mu.Lock()
		defer mu.Unlock()
		b.Fatalf("delivered %d of %d", got, total)
	}
	b.StopTimer()
	if cpu1, err := srv.CPUTime(); err == nil && cpuErr == nil {
		// What PGlite spent per change: the writer's inserts and the
		// source's reads together.
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(total), "pglite_cpu_us/change")
	}
	mu.Lock()
	defer mu.Unlock()
	b.ReportMetric(float64(total)/float64(max(reads, 1)), "changes/read")
	elapsed := lastAt.Sub(start)
	lat := make([]time.Duration, 0, total)
	for id := 1; id <= total; id++ {
		lat = append(lat, max(0, received[id].Sub(acked[id])))
	}
	reportLatency(b, lat)
	b.ReportMetric(float64(total)/written.Seconds(), "written/s")
	b.ReportMetric(float64(total)/elapsed.Seconds(), "delivered/s")
}

// reportLatency reports percentiles of lat in milliseconds.
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for _, p := range []struct {
		name string
		q    float64
	}{{"p50_ms", 0.50}, {"p95_ms", 0.95}, {"p99_ms", 0.99}} {
		b.ReportMetric(ms(lat[min(len(lat)-1, int(p.q*float64(len(lat))))]), p.name)
	}
	b.ReportMetric(ms(lat[len(lat)-1]), "max_ms")
}

// BenchmarkChangeTablePGliteBaseline is the writer of BenchmarkChangeTablePGlite on
// a table without capture, for comparison: what the trigger costs the
// application.
func BenchmarkChangeTablePGliteBaseline(b *testing.B) {
	for _, perStmt := range []int{1, 100} {
		b.Run(fmt.Sprintf("rows=%d", perStmt), func(b *testing.B) {
			srv := pglitetest.Start(b, pglitetest.Options{MaxConnections: 4})
			db := nConnect(b, srv.URL())
			nExec(b, db, `CREATE TABLE bench (id bigint PRIMARY KEY, body text NOT NULL)`)
			body := strings.Repeat("x", 100)
			b.ResetTimer()
			start := time.Now()
			for id := 1; id <= b.N; id += perStmt {
				k := min(perStmt, b.N-id+1)
				if _, err := db.Exec(context.Background(), `INSERT INTO bench SELECT g, $2 FROM generate_series($1::bigint, $1::bigint + $3 - 1) g`, id, body, k); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "written/s")
		})
	}
}
