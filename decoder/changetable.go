package decoder

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ChangeTableConfig configures a [ChangeTable] source.
type ChangeTableConfig struct {
	// DBURL is the connection string of the database: for PGlite, its
	// socket bridge (pglite-server), e.g.
	// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable. The user
	// must be able to create the schema realtime, triggers on the published
	// tables and, for immediate capture of newly published tables, an event
	// trigger (superuser; every PGlite client is).
	DBURL string
	// Publication names the captured tables, as for logical decoding
	// (created empty if missing; tables are added with ALTER PUBLICATION
	// ... ADD TABLE).
	Publication string
	// PollInterval is the pause between reads of the change log when
	// nothing new was found and no notification woke the source; 0 means
	// 100ms.
	PollInterval time.Duration
	// Retention is how long rows stay in the change log after they were
	// delivered (and every other consumer has passed them); 0 prunes them
	// right after delivery.
	Retention time.Duration
	// MaxBatch is the most changes per sink call (and per read of the
	// change log); 0 means 1000.
	MaxBatch int
	// Logger receives lifecycle logs; nil discards them.
	Logger *slog.Logger
	// OnState, if set, is called with true when a session starts delivering
	// and with false when it ends. It runs on the Run goroutine and must not
	// block.
	OnState func(up bool)
	// OnRelation, if set, is called with every new or changed Relation
	// snapshot (at the first catalog read of a session and after a schema,
	// key or replica identity change). It runs on the Run goroutine before
	// changes that use the relation reach the sink, and must not block.
	OnRelation func(*Relation)

	// ExtraPublications are captured too, under the same cursor; every
	// action on their tables is delivered (the realtime.messages
	// publication of Broadcast from the database, docs/protocol.md §9.3).
	ExtraPublications []string

	// Cursor names this consumer's durable position in
	// realtime.change_cursor; "" means the publication name. Two sources
	// running at once must not share a cursor.
	Cursor string
	// SyncInterval is the period of catalog reads that refresh relations,
	// publication actions and (where the event trigger is missing) the
	// capture triggers; 0 means 1s.
	SyncInterval time.Duration
	// NoListen disables LISTEN. By default the source listens for the
	// capture trigger's notifications and wakes on them when they arrive;
	// stock pglite-server never delivers them to a listening socket (they go
	// to the socket that committed), which a probe at session start detects,
	// and the source then stops listening and only polls.
	NoListen bool
	// RetryMin and RetryMax bound the reconnect backoff, which doubles
	// from RetryMin up to RetryMax; 0 means 200ms and 10s.
	RetryMin, RetryMax time.Duration
}

// Outcomes of the notification probe.
const (
	probePending int32 = iota
	probeDelivered
	probeLost
)

// probeTimeout is how long a session waits for its probe notification
// before it concludes that notifications do not reach it.
const probeTimeout = 2 * time.Second

// drainWait bounds the last look for the probe's notification, which may
// have arrived while the session was busy.
const drainWait = time.Millisecond

// markSpacing is the finest granularity of the retention bookkeeping.
const markSpacing = time.Second

// ChangeTable is a change source that reads a change-log table filled by row
// triggers, for databases without usable logical decoding: PGlite behind
// its socket bridge (pglite-server) in particular. See docs/pglite.md.
//
// Each session installs (idempotently) the schema realtime with the change
// log, a cursor table, the capture trigger function and an event trigger
// that puts the capture trigger on every table of the publication as soon
// as it is added. The source reads the log in id order from its cursor,
// hands the changes to the sink, and then records the last delivered id and
// prunes delivered rows older than the retention, in one statement batch.
// It polls every PollInterval and wakes early on the trigger's
// notification when the connection receives one.
//
// Positions are change-log ids: each change has its own. Delivery is at
// least once: the cursor moves only after the sink returned nil, so a crash
// between the two delivers the batch again; a clean stop or restart
// delivers every change exactly once. Ids follow commit order only when
// transactions cannot interleave, as in PGlite's single backend; on a
// multi-backend PostgreSQL use [Logical].
//
// All access respects a session shared with other clients: one connection
// in simple-protocol mode (and a short-lived second one for the probe), no transaction held across round trips, no
// session-level SET, SET ROLE or PREPARE. Status is safe for concurrent use;
// Run may run once at a time.
type ChangeTable struct {
	cfg       ChangeTableConfig
	log       *slog.Logger
	types     *TypeCache
	running   atomic.Bool
	statusBox // status and confirmed position (a change-log id)

	// Run goroutine state, kept across sessions.
	rels    map[relKey]*changeTableRel
	pub     pubActions
	marks   []pruneMark // delivered positions not yet Retention old, ascending
	matured uint64      // newest id delivered at least Retention ago
	pruned  uint64      // every row up to it has been deleted
	lastXID string      // transaction of the newest delivered change

	// probed is the outcome of the current session's delivery probe:
	// probePending, probeDelivered or probeLost.
	probed atomic.Int32
}

// relKey identifies a table by schema and name.
type relKey struct{ schema, table string }

// changeTableRel is a relation snapshot plus what decoding its rows needs.
type changeTableRel struct {
	rel   *Relation
	types []*TypeInfo
	known map[string]bool // every attribute name of the table
	main  bool            // in the main publication: its actions apply
}

// pubActions are the publication's published actions.
type pubActions struct{ insert, update, delete bool }

// pruneMark records that everything up to id had been delivered at at.
type pruneMark struct {
	id        uint64
	start, at time.Time
}

// logEntry is one change-log row.
type logEntry struct {
	ID            uint64
	Schema, Table string
	Op            string // I, U or D
	Ident         string // replica identity when captured (UPDATE, DELETE)
	XID           string
	TS            int64 // transaction timestamp, Unix µs
	New, Old      json.RawMessage
}

// NewChangeTable returns a change-table source (the CLI's --source notify);
// nothing connects before Run.
func NewChangeTable(cfg ChangeTableConfig) *ChangeTable {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	cfg.Retention = max(cfg.Retention, 0)
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	if cfg.Cursor == "" {
		cfg.Cursor = cfg.Publication
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = time.Second
	}
	retryBounds(&cfg.RetryMin, &cfg.RetryMax)
	log := sourceLogger(cfg.Logger, "source", "notify", "publication", cfg.Publication, "cursor", cfg.Cursor)
	n := &ChangeTable{
		cfg:   cfg,
		log:   log,
		types: NewTypeCache(),
		rels:  map[relKey]*changeTableRel{},
	}
	n.st = Status{Kind: "notify", Publication: cfg.Publication}
	return n
}

// Status reports the source's state. Positions are change-log ids, and
// LagBytes counts ids (changes) between the newest id handed out and the
// confirmed one, not bytes. It is safe for concurrent use.
func (n *ChangeTable) Status() Status { return n.snapshot() }

// Run delivers changes to sink until ctx ends; see [Source]. Connection,
// database and sink errors end the current session; Run then reconnects
// with exponential backoff and resumes after the durable cursor, so
// undelivered changes come again. It returns nil when ctx ends, and an
// error at once for an unusable configuration or when already running.
func (n *ChangeTable) Run(ctx context.Context, sink Sink) error {
	if sink == nil {
		return errors.New("decoder: notify: nil sink")
	}
	if n.cfg.Publication == "" || len(n.cfg.Publication) > 63 || strings.ContainsRune(n.cfg.Publication, 0) {
		return fmt.Errorf("decoder: notify: invalid publication name %q", n.cfg.Publication)
	}
	if len(n.cfg.Cursor) > 200 || strings.ContainsRune(n.cfg.Cursor, 0) {
		return fmt.Errorf("decoder: notify: invalid cursor name %q", n.cfg.Cursor)
	}
	cfg, err := pgx.ParseConfig(n.cfg.DBURL)
	if err != nil {
		return fmt.Errorf("decoder: notify: parse database url: %w", err)
	}
	// Simple protocol: no named statements on a session other clients share.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "realtime_notify"
	}
	if !n.running.CompareAndSwap(false, true) {
		return errors.New("decoder: notify: already running")
	}
	defer n.running.Store(false)

	return retryLoop(ctx, n.log, "notify session", nil, n.cfg.RetryMin, n.cfg.RetryMax,
		func() (bool, error) { return n.session(ctx, cfg, sink) }, recordError(n.update))
}

// changeTableSession is one connection lifetime.
type changeTableSession struct {
	n    *ChangeTable
	conn *pgx.Conn
	sink Sink

	listening    bool      // LISTEN is active on the connection
	probeUntil   time.Time // non-zero while the delivery probe is pending
	lastSync     time.Time
	delivered    bool
	relsReloaded bool // relations were reloaded during the current batch
}

func (n *ChangeTable) session(ctx context.Context, cfg *pgx.ConnConfig, sink Sink) (progressed bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("decoder: notify: connect: %w", err)
	}
	s := &changeTableSession{n: n, conn: conn, sink: sink}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if s.listening && !conn.IsClosed() && conn.PgConn().TxStatus() == 'I' {
			// LISTEN outlives the socket on PGlite's shared session.
			if _, err := conn.Exec(cctx, "UNLISTEN "+notifyChannel); err != nil {
				n.log.Debug("unlisten failed", "err", err)
			}
		}
		conn.Close(cctx)
	}()

	if err := s.install(ctx, cfg); err != nil {
		return false, err
	}
	began := time.Now()
	n.update(func(st *Status) {
		st.Connected = true
		st.ConnectedSince = began
		st.Sessions++
	})
	n.log.Info("notify source delivering", "after_id", n.confirmed.Load(), "listening", s.listening)
	if n.cfg.OnState != nil {
		n.cfg.OnState(true)
	}
	defer func() {
		n.update(func(st *Status) {
			st.Connected = false
			st.ConnectedSince = time.Time{}
		})
		if n.cfg.OnState != nil {
			n.cfg.OnState(false)
		}
	}()
	err = s.loop(ctx)
	if ctx.Err() != nil {
		err = nil
	}
	return s.delivered || time.Since(began) > n.cfg.RetryMax, err
}

// install sets up the capture objects, registers the cursor, reads the
// catalog and starts listening.
func (s *changeTableSession) install(ctx context.Context, cfg *pgx.ConnConfig) error {
	n := s.n
	var version string
	if err := s.conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		return fmt.Errorf("decoder: notify: %w", err)
	}
	if !strings.Contains(version, "PGlite") {
		n.log.Warn("notify source on a server that is not PGlite: concurrently committing transactions can be delivered out of order or missed; use the logical source there", "version", version)
	}
	if pg := s.conn.PgConn(); pg.ParameterStatus("standard_conforming_strings") != "on" || pg.ParameterStatus("client_encoding") != "UTF8" {
		return errors.New("decoder: notify: the connection needs standard_conforming_strings=on and client_encoding=UTF8")
	}
	if _, err := s.conn.PgConn().Exec(ctx, changeTableInstallSQL).ReadAll(); err != nil {
		return fmt.Errorf("decoder: notify: install capture schema: %w", err)
	}
	if err := ensurePublication(ctx, s.conn, n.cfg.Publication); err != nil {
		return err
	}
	var last int64
	for _, p := range n.cfg.ExtraPublications {
		if err := ensurePublication(ctx, s.conn, p); err != nil {
			return err
		}
	}
	extra := n.cfg.ExtraPublications
	if extra == nil {
		extra = []string{}
	}
	if err := s.conn.QueryRow(ctx, changeTableRegisterSQL, n.cfg.Cursor, n.cfg.Publication, extra).Scan(&last); err != nil {
		return fmt.Errorf("decoder: notify: register cursor %s: %w", n.cfg.Cursor, err)
	}
	last = max(last, 0)
	n.confirmed.Store(uint64(last))
	// Rows delivered before this session become prunable a retention from
	// now.
	n.addMark(uint64(last), time.Now())
	if err := s.sync(ctx, true); err != nil {
		return err
	}
	n.probed.Store(probePending)
	if !n.cfg.NoListen {
		if _, err := s.conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
			return fmt.Errorf("decoder: notify: listen: %w", err)
		}
		s.listening = true
		s.probe(ctx, cfg)
	}
	return nil
}

// probe sends a notification from a second connection. If it reaches this
// one within probeTimeout, notifications wake the source; otherwise the
// source stops listening (stock pglite-server hands every notification to
// the socket that committed, and a LISTEN on its shared session would only
// send them to the application's writers).
func (s *changeTableSession) probe(ctx context.Context, cfg *pgx.ConnConfig) {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	c, err := pgx.ConnectConfig(pctx, cfg)
	if err == nil {
		var nonce [8]byte
		rand.Read(nonce[:])
		_, err = c.Exec(pctx, "SELECT pg_catalog.pg_notify($1, $2)", notifyChannel, "probe "+hex.EncodeToString(nonce[:]))
		c.Close(pctx)
	}
	if err != nil {
		s.n.log.Info("notification probe failed; polling only", "err", err)
		s.unlisten(ctx)
		s.n.probed.Store(probeLost)
		return
	}
	s.probeUntil = time.Now().Add(probeTimeout)
}

func (s *changeTableSession) unlisten(ctx context.Context) {
	if !s.listening {
		return
	}
	s.listening = false
	s.probeUntil = time.Time{}
	if _, err := s.conn.Exec(ctx, "UNLISTEN "+notifyChannel); err != nil {
		s.n.log.Debug("unlisten failed", "err", err)
	}
}

// loop reads and delivers until ctx ends or an error.
func (s *changeTableSession) loop(ctx context.Context) error {
	n := s.n
	for {
		if time.Since(s.lastSync) >= n.cfg.SyncInterval {
			if err := s.sync(ctx, false); err != nil {
				return err
			}
		}
		entries, err := s.fetch(ctx)
		if err != nil {
			return err
		}
		if len(entries) > 0 {
			if err := s.deliver(ctx, entries); err != nil {
				return err
			}
		}
		if len(entries) >= n.cfg.MaxBatch {
			continue // catching up
		}
		if err := s.wait(ctx); err != nil {
			return err
		}
	}
}

// wait blocks until PollInterval passes or a notification announces a
// change after the cursor. Notifications only wake the source, which then
// reads the log: any database user may NOTIFY any channel, so their
// contents are never delivered.
func (s *changeTableSession) wait(ctx context.Context) error {
	n := s.n
	if !s.listening {
		t := time.NewTimer(n.cfg.PollInterval)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	until := time.Now().Add(n.cfg.PollInterval)
	// lastLook: the probe's time is up, but its notification may have
	// arrived while the session was reading and delivering a backlog
	// (pgx keeps it until WaitForNotification): look once more before
	// giving up on notifications.
	lastLook := false
	if !s.probeUntil.IsZero() {
		if !time.Now().Before(s.probeUntil) {
			lastLook = true
			until = time.Now().Add(drainWait)
		} else if s.probeUntil.Before(until) {
			until = s.probeUntil
		}
	}
	for {
		note, err := s.receive(ctx, time.Until(until))
		if err == nil && note == nil && lastLook {
			n.log.Info("notifications do not reach this connection (stock pglite-server); polling only", "poll_interval", n.cfg.PollInterval)
			s.unlisten(ctx)
			n.probed.Store(probeLost)
			return nil
		}
		if err != nil || note == nil {
			return err
		}
		if !s.probeUntil.IsZero() {
			s.probeUntil = time.Time{}
			n.probed.Store(probeDelivered)
			n.log.Info("notifications reach this connection; waking on them", "poll_interval", n.cfg.PollInterval)
		}
		if s.announcesNew(note) {
			break
		}
	}
	// Read at once. Notifications that arrived together with this one stay
	// queued; once the read has passed their ids, announcesNew skips them.
	// (Waiting for more before reading saves PGlite little: most of what
	// the notifications cost it is delivering them to a listening session,
	// not the reads, docs/benchmarks.md "PGlite notify source".)
	return nil
}

// announcesNew reports whether a notification may announce a change after
// the cursor: anything but a capture notification for an id already
// delivered.
func (s *changeTableSession) announcesNew(note *pgconn.Notification) bool {
	if note.Channel != notifyChannel {
		return false
	}
	var e struct {
		ID uint64 `json:"id"`
	}
	if json.Unmarshal([]byte(note.Payload), &e) != nil || e.ID == 0 {
		return true // the probe
	}
	return e.ID > s.n.confirmed.Load()
}

// receive waits up to d for one notification; it returns nil when none
// came in time.
func (s *changeTableSession) receive(ctx context.Context, d time.Duration) (*pgconn.Notification, error) {
	if d <= 0 {
		return nil, nil
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	note, err := s.conn.WaitForNotification(wctx)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("decoder: notify: wait for notification: %w", err)
	}
	return note, nil
}

// fetch reads up to MaxBatch changes after the confirmed position.
func (s *changeTableSession) fetch(ctx context.Context) ([]logEntry, error) {
	n := s.n
	rows, err := s.conn.Query(ctx, changeTableFetchSQL, int64(n.confirmed.Load()), n.cfg.MaxBatch)
	if err != nil {
		return nil, fmt.Errorf("decoder: notify: read change log: %w", err)
	}
	defer rows.Close()
	var out []logEntry
	for rows.Next() {
		var e logEntry
		var id int64
		var newRow, oldRow []byte
		if err := rows.Scan(&id, &e.Schema, &e.Table, &e.Op, &e.Ident, &e.XID, &e.TS, &newRow, &oldRow); err != nil {
			return nil, fmt.Errorf("decoder: notify: read change log: %w", err)
		}
		e.ID = uint64(id)
		e.New, e.Old = newRow, oldRow
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("decoder: notify: read change log: %w", err)
	}
	return out, nil
}

// deliver turns entries (ascending ids after the confirmed position) into
// changes, hands them to the sink and moves the cursor.
func (s *changeTableSession) deliver(ctx context.Context, entries []logEntry) error {
	n := s.n
	s.relsReloaded = false
	changes := make([]Change, 0, len(entries))
	txns := int64(0)
	lastXID := n.lastXID
	var newest time.Time
	for i := range entries {
		e := &entries[i]
		c, ok, err := s.change(ctx, e)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		changes = append(changes, c)
		if e.XID != lastXID || e.XID == "" {
			txns++
			lastXID = e.XID
		}
		newest = c.CommitTime
	}
	lastID := entries[len(entries)-1].ID
	n.update(func(st *Status) {
		st.ReceivedPosition = max(st.ReceivedPosition, lastID)
		st.ServerPosition = max(st.ServerPosition, lastID)
	})
	if len(changes) > 0 {
		// The sink gets the Run context: a dying connection must not
		// interrupt a fan-out half way.
		if err := s.sink(ctx, changes); err != nil {
			return fmt.Errorf("decoder: notify: sink: %w", err)
		}
		s.delivered = true
	}
	// The sink has the batch: record that even if ctx ended meanwhile.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.confirm(cctx, lastID); err != nil {
		return err
	}
	n.lastXID = lastXID
	n.update(func(st *Status) {
		st.Transactions += txns
		st.Changes += int64(len(changes))
		if !newest.IsZero() {
			st.LastCommitTime = newest
		}
	})
	return nil
}

// confirm stores the cursor and prunes, in one message (one implicit
// transaction).
func (s *changeTableSession) confirm(ctx context.Context, lastID uint64) error {
	n := s.n
	now := time.Now()
	n.addMark(lastID, now)
	var b strings.Builder
	b.WriteString("INSERT INTO realtime.change_cursor (name, publication, last_id) VALUES (")
	writeQuoted(&b, n.cfg.Cursor)
	b.WriteString(", ")
	writeQuoted(&b, n.cfg.Publication)
	b.WriteString(", ")
	b.WriteString(strconv.FormatUint(lastID, 10))
	b.WriteString(") ON CONFLICT (name) DO UPDATE SET last_id = EXCLUDED.last_id, updated_at = now()")
	prune := n.pruneSQL(now)
	if prune != "" {
		b.WriteString(";")
		b.WriteString(prune)
	}
	results, err := s.conn.PgConn().Exec(ctx, b.String()).ReadAll()
	if err != nil {
		return fmt.Errorf("decoder: notify: store cursor %d: %w", lastID, err)
	}
	n.confirmed.Store(lastID)
	if prune != "" {
		return n.prunedTo(results)
	}
	return nil
}

// prune deletes matured rows when no delivery does it (and retries rows
// another consumer held back).
func (s *changeTableSession) prune(ctx context.Context) error {
	n := s.n
	prune := n.pruneSQL(time.Now())
	if prune == "" {
		return nil
	}
	results, err := s.conn.PgConn().Exec(ctx, prune).ReadAll()
	if err != nil {
		return fmt.Errorf("decoder: notify: prune change log: %w", err)
	}
	return n.prunedTo(results)
}

// pruneSQL returns the statements that delete the rows delivered at least
// Retention before now and passed by every consumer, and then report how
// far that got; "" when there is nothing to delete.
func (n *ChangeTable) pruneSQL(now time.Time) string {
	n.mature(now)
	if n.matured <= n.pruned {
		return ""
	}
	t := strconv.FormatUint(n.matured, 10)
	return "DELETE FROM realtime.change_log WHERE id <= " + t +
		" AND id <= (SELECT min(last_id) FROM realtime.change_cursor);" +
		"SELECT least(" + t + ", (SELECT min(last_id) FROM realtime.change_cursor))"
}

// prunedTo records the result of pruneSQL's last statement.
func (n *ChangeTable) prunedTo(results []*pgconn.Result) error {
	if len(results) == 0 || len(results[len(results)-1].Rows) != 1 {
		return errors.New("decoder: notify: prune change log: no result")
	}
	v, err := strconv.ParseUint(string(results[len(results)-1].Rows[0][0]), 10, 64)
	if err != nil {
		return fmt.Errorf("decoder: notify: prune change log: %w", err)
	}
	n.pruned = max(n.pruned, v)
	return nil
}

// addMark records that everything up to id was delivered at t.
func (n *ChangeTable) addMark(id uint64, t time.Time) {
	if k := len(n.marks); k > 0 {
		m := &n.marks[k-1]
		if id <= m.id {
			return
		}
		if t.Sub(m.start) < markSpacing {
			m.id, m.at = id, t
			return
		}
	}
	n.marks = append(n.marks, pruneMark{id: id, start: t, at: t})
}

// mature raises matured to the newest id delivered at least Retention
// before now, and forgets the marks it passed.
func (n *ChangeTable) mature(now time.Time) {
	i := 0
	for ; i < len(n.marks) && now.Sub(n.marks[i].at) >= n.cfg.Retention; i++ {
		n.matured = max(n.matured, n.marks[i].id)
	}
	n.marks = append(n.marks[:0], n.marks[i:]...)
}

// writeQuoted writes s as an SQL string literal. install checks that the
// connection has standard_conforming_strings on, so doubling quotes is
// enough.
func writeQuoted(b *strings.Builder, s string) {
	b.WriteByte('\'')
	b.WriteString(strings.ReplaceAll(s, "'", "''"))
	b.WriteByte('\'')
}

// sync installs missing capture triggers and rereads the publication and
// its relations. Relations whose snapshot changed are announced.
func (s *changeTableSession) sync(ctx context.Context, first bool) error {
	n := s.n
	s.lastSync = time.Now()
	var created int
	if err := s.conn.QueryRow(ctx, changeTableSyncSQL).Scan(&created); err != nil {
		return fmt.Errorf("decoder: notify: sync capture triggers: %w", err)
	}
	if created > 0 {
		n.log.Info("capture triggers updated", "count", created)
	}
	var pub pubActions
	if err := s.conn.QueryRow(ctx, changeTablePublicationSQL, n.cfg.Publication).Scan(&pub.insert, &pub.update, &pub.delete); err != nil {
		return fmt.Errorf("decoder: notify: read publication %s: %w", n.cfg.Publication, err)
	}
	n.pub = pub
	if err := s.loadRelations(ctx); err != nil {
		return err
	}
	var head int64
	if err := s.conn.QueryRow(ctx, changeTableHeadSQL).Scan(&head); err != nil {
		return fmt.Errorf("decoder: notify: read change log head: %w", err)
	}
	n.update(func(st *Status) { st.ServerPosition = max(st.ServerPosition, uint64(head)) })
	if !first {
		return s.prune(ctx)
	}
	return nil
}

// loadRelations reads the publication's tables and columns from the
// catalog and replaces changed snapshots.
func (s *changeTableSession) loadRelations(ctx context.Context) error {
	n := s.n
	type colRow struct {
		oid                  uint32
		schema, table, ident string
		name                 string
		typeOID              uint32
		key, published, main bool
	}
	pubs := append([]string{n.cfg.Publication}, n.cfg.ExtraPublications...)
	rows, err := s.conn.Query(ctx, changeTableRelationsSQL, pubs, n.cfg.Publication)
	if err != nil {
		return fmt.Errorf("decoder: notify: read relations: %w", err)
	}
	var cols []colRow
	for rows.Next() {
		var c colRow
		if err := rows.Scan(&c.oid, &c.schema, &c.table, &c.ident, &c.name, &c.typeOID, &c.key, &c.published, &c.main); err != nil {
			rows.Close()
			return fmt.Errorf("decoder: notify: read relations: %w", err)
		}
		cols = append(cols, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("decoder: notify: read relations: %w", err)
	}
	var oids []uint32
	for _, c := range cols {
		if c.published {
			oids = append(oids, c.typeOID)
		}
	}
	if err := n.types.Load(ctx, s.conn, oids...); err != nil {
		return fmt.Errorf("decoder: notify: %w", err)
	}
	next := make(map[relKey]*changeTableRel, len(n.rels))
	for i := 0; i < len(cols); {
		j := i
		for j < len(cols) && cols[j].oid == cols[i].oid {
			j++
		}
		c0 := cols[i]
		rel := &Relation{OID: c0.oid, Schema: c0.schema, Table: c0.table, ReplicaIdentity: firstByte(c0.ident)}
		nr := &changeTableRel{rel: rel, known: map[string]bool{}, main: c0.main}
		for _, c := range cols[i:j] {
			nr.known[c.name] = true
			if !c.published {
				continue
			}
			t, err := n.types.Get(ctx, s.conn, c.typeOID)
			if err != nil {
				return fmt.Errorf("decoder: notify: relation %s.%s column %s: %w", c.schema, c.table, c.name, err)
			}
			rel.Columns = append(rel.Columns, Column{Name: c.name, Type: t.Name, TypeOID: c.typeOID, Key: c.key})
			nr.types = append(nr.types, t)
		}
		k := relKey{c0.schema, c0.table}
		if old := n.rels[k]; old != nil && old.main == nr.main && sameRelation(old.rel, rel) {
			next[k] = old
		} else {
			next[k] = nr
			if n.cfg.OnRelation != nil {
				n.cfg.OnRelation(rel)
			}
		}
		i = j
	}
	n.rels = next
	return nil
}

func sameRelation(a, b *Relation) bool {
	return a.OID == b.OID && a.Schema == b.Schema && a.Table == b.Table &&
		a.ReplicaIdentity == b.ReplicaIdentity && slices.Equal(a.Columns, b.Columns)
}

// change converts one entry. ok is false for changes the publication does
// not publish (table not or no longer in it, action not published).
func (s *changeTableSession) change(ctx context.Context, e *logEntry) (Change, bool, error) {
	n := s.n
	var kind Kind
	switch e.Op {
	case "I":
		kind = Insert
	case "U":
		kind = Update
	case "D":
		kind = Delete
	default:
		return Change{}, false, fmt.Errorf("decoder: notify: change %d: unknown operation %q", e.ID, e.Op)
	}
	newRow, err := parseRow(e.New)
	if err != nil {
		return Change{}, false, fmt.Errorf("decoder: notify: change %d: new row: %w", e.ID, err)
	}
	oldRow, err := parseRow(e.Old)
	if err != nil {
		return Change{}, false, fmt.Errorf("decoder: notify: change %d: old row: %w", e.ID, err)
	}
	k := relKey{e.Schema, e.Table}
	r := n.rels[k]
	stale := r == nil || !r.knows(newRow) || !r.knows(oldRow) ||
		(e.Ident != "" && e.Ident[0] != r.rel.ReplicaIdentity)
	if stale && !s.relsReloaded {
		// A table new to the publication, or a schema or replica identity
		// change since the last catalog read.
		s.relsReloaded = true
		if err := s.loadRelations(ctx); err != nil {
			return Change{}, false, err
		}
		r = n.rels[k]
	}
	if r == nil {
		return Change{}, false, nil
	}
	if r.main && ((kind == Insert && !n.pub.insert) || (kind == Update && !n.pub.update) || (kind == Delete && !n.pub.delete)) {
		return Change{}, false, nil
	}
	c := Change{Kind: kind, Rel: r.rel, CommitTime: time.UnixMicro(e.TS).UTC(), Position: e.ID}
	if kind != Delete {
		if newRow == nil {
			return Change{}, false, fmt.Errorf("decoder: notify: change %d: no new row", e.ID)
		}
		c.New = r.values(newRow, false)
	}
	if kind != Insert {
		if oldRow == nil {
			return Change{}, false, fmt.Errorf("decoder: notify: change %d: no old row", e.ID)
		}
		ident := r.rel.ReplicaIdentity
		if e.Ident != "" {
			ident = e.Ident[0]
		}
		c.Old = r.oldImage(kind, ident, oldRow, c.New)
	}
	return c, true, nil
}

// knows reports whether every field of row is an attribute of the table.
func (r *changeTableRel) knows(row map[string]json.RawMessage) bool {
	for name := range row {
		if !r.known[name] {
			return false
		}
	}
	return true
}

// oldImage cuts the captured old row as the replica identity in force at
// capture time would: everything for FULL, nothing for NOTHING, the key
// columns otherwise (and, like pgoutput, nothing for an UPDATE that kept
// the key).
func (r *changeTableRel) oldImage(kind Kind, ident byte, old map[string]json.RawMessage, newVals []Value) []Value {
	switch ident {
	case 'f':
		return r.values(old, false)
	case 'n':
		return nil
	}
	hasKey := false
	for _, c := range r.rel.Columns {
		hasKey = hasKey || c.Key
	}
	if !hasKey {
		return nil
	}
	vals := r.values(old, true)
	if kind == Update {
		same := true
		for i, c := range r.rel.Columns {
			if c.Key && (vals[i].Null != newVals[i].Null || !bytes.Equal(vals[i].RenderedJSON(), newVals[i].RenderedJSON())) {
				same = false
				break
			}
		}
		if same {
			return nil
		}
	}
	return vals
}

// values builds a row image aligned with the relation's columns. Columns
// missing from row are Absent; with keyOnly, so are non-key columns.
func (r *changeTableRel) values(row map[string]json.RawMessage, keyOnly bool) []Value {
	vals := make([]Value, len(r.rel.Columns))
	for i, c := range r.rel.Columns {
		raw, ok := row[c.Name]
		if !ok || (keyOnly && !c.Key) {
			vals[i] = Value{Absent: true}
			continue
		}
		vals[i] = jsonbValue(raw, r.types[i])
	}
	return vals
}

// parseRow splits a jsonb row object into its fields; nil or JSON null
// gives nil.
func parseRow(raw json.RawMessage) (map[string]json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// jsonbValue converts one field of to_jsonb(row) to a Value. raw is owned by
// the caller and not retained.
//
// JSON is the field itself: to_jsonb renders a value the way the reference
// server does (docs/protocol.md §4.3), with the capture trigger pinning the
// settings that matter, so only the bpchar/bit first-character quirk needs
// to be applied here. Text is what filters and key lookups need, derived
// from the field: a string's contents (timestamps therefore in ISO form
// with "T"), a number's digits, "t"/"f" for booleans, and JSON text for
// json/jsonb columns, arrays and composites. Filters accept both this and
// PostgreSQL's own text form.
func jsonbValue(raw json.RawMessage, t *TypeInfo) Value {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return Value{Null: true, JSON: []byte("null")}
	}
	js := append([]byte(nil), raw...)
	base := t
	for d := 0; base != nil && base.Kind == 'd' && base.Base != nil && d < maxTypeDepth; d++ {
		base = base.Base
	}
	isJSON := base != nil && (base.OID == oidJSON || base.OID == oidJSONB)
	if t != nil && hasFirstCharQuirk(t.OID) {
		js = firstChars(js)
	}
	switch {
	case isJSON:
		return Value{Text: string(raw), JSON: js}
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return Value{Text: string(raw), JSON: js}
		}
		return Value{Text: s, JSON: js}
	case string(raw) == "true":
		return Value{Text: "t", JSON: js}
	case string(raw) == "false":
		return Value{Text: "f", JSON: js}
	}
	return Value{Text: string(raw), JSON: js}
}

// firstChars keeps the first character of a JSON string, or of every
// string in a JSON array (nested to any depth); other JSON is returned as
// is.
func firstChars(js []byte) []byte {
	switch {
	case len(js) > 0 && js[0] == '"':
		var s string
		if json.Unmarshal(js, &s) != nil {
			return js
		}
		return appendJSONString(nil, firstChar(s))
	case len(js) > 0 && js[0] == '[':
		var elems []json.RawMessage
		if json.Unmarshal(js, &elems) != nil {
			return js
		}
		out := []byte{'['}
		for i, el := range elems {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, firstChars(bytes.TrimSpace(el))...)
		}
		return append(out, ']')
	}
	return js
}
