package decoder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// LogicalConfig configures a [Logical] source.
type LogicalConfig struct {
	// DBURL is the connection string of the database to stream from. The
	// user needs the REPLICATION attribute (or superuser) and the right to
	// create the publication and slot if they are missing.
	DBURL string
	// Slot is the persistent logical replication slot (pgoutput plugin),
	// created if missing. Names are [a-z0-9_], at most 63 bytes.
	Slot string
	// Publication is the publication streamed, created empty if missing
	// (tables are added with ALTER PUBLICATION ... ADD TABLE).
	Publication string
	// ExtraPublications are streamed through the same slot as well; they
	// must exist (e.g. the realtime.messages publication of Broadcast from
	// the database).
	ExtraPublications []string
	// StandbyInterval is the period of standby status updates; 0 means 10s.
	StandbyInterval time.Duration
	// MaxBatch is the soft limit of changes per sink call; 0 means 1000.
	// Batches end at transaction boundaries, so a transaction larger than
	// MaxBatch is delivered whole, in one batch.
	MaxBatch int
	// Logger receives lifecycle logs; nil discards them.
	Logger *slog.Logger
	// OnState, if set, is called with true when streaming starts and with
	// false when a streaming session ends. It runs on the Run goroutine and
	// must not block.
	OnState func(up bool)
	// OnRelation, if set, is called with every Relation message: at the
	// first use of a table in a session and after every schema or
	// privilege change of it (pgoutput resends the relation after any
	// relcache invalidation). It runs on the Run goroutine, before the
	// changes that use the relation reach the sink, and must not block.
	OnRelation func(*Relation)
	// RetryMin and RetryMax bound the reconnect backoff, which doubles
	// from RetryMin up to RetryMax; 0 means 200ms and 10s.
	RetryMin, RetryMax time.Duration
	// Gate, if set, is asked before every session: an error ends the
	// attempt before connecting (a cluster node that cannot hand changes
	// on leaves the slot to the others).
	Gate func(ctx context.Context) error
	// ReplicationParams are extra startup parameters of the replication
	// connection, e.g. a short wal_sender_timeout so that a frozen reader
	// loses the slot within seconds.
	ReplicationParams map[string]string
	// Confirmer, if set, takes confirming over: the source hands it, in
	// order and on the Run goroutine, every position it would confirm (a
	// delivered batch's, an idle keepalive's) and confirms none itself; the
	// owner calls [Logical.Confirm] once a position is safe (a cluster's
	// slot holder: once the change stream acknowledged what precedes it).
	// An error ends the session (the owner can no longer make positions
	// safe: a cluster's slot holder whose change stream stopped
	// acknowledging gives the slot up), also on an idle slot, whose
	// keepalives keep coming while the confirmed position lags the server's.
	Confirmer func(pos LSN) error
}

// Session settings that make the text output of values stable and match
// what [Render] expects. They are startup parameters of both connections:
// a replication connection cannot run SET.
var sessionParams = map[string]string{
	"TimeZone":           "UTC",
	"DateStyle":          "ISO",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "1",
	"bytea_output":       "hex",
}

var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// Logical is a change source that streams a publication through a logical
// replication slot with the pgoutput plugin (protocol version 1).
//
// Delivery is at least once: a transaction's position is confirmed to the
// server only after the sink returned nil for the batch holding it, so
// after a crash, a sink error or a lost connection unconfirmed transactions
// are delivered again. Status is safe for concurrent use; Run may run once
// at a time.
type Logical struct {
	cfg       LogicalConfig
	log       *slog.Logger
	types     *TypeCache
	running   atomic.Bool
	statusBox // status and confirmed position (an LSN)

	// rels is the newest relation per OID, kept across sessions. Owned by
	// the Run goroutine.
	rels map[uint32]*relEntry
}

// relEntry is a relation plus the resolved types of its columns.
type relEntry struct {
	rel   *Relation
	types []*TypeInfo
}

// NewLogical returns a logical source; nothing connects before Run.
func NewLogical(cfg LogicalConfig) *Logical {
	if cfg.StandbyInterval <= 0 {
		cfg.StandbyInterval = 10 * time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	retryBounds(&cfg.RetryMin, &cfg.RetryMax)
	log := sourceLogger(cfg.Logger, "source", "logical", "slot", cfg.Slot, "publication", cfg.Publication)
	l := &Logical{
		cfg:   cfg,
		log:   log,
		types: NewTypeCache(),
		rels:  map[uint32]*relEntry{},
	}
	l.st = Status{Kind: "logical", Slot: cfg.Slot, Publication: cfg.Publication}
	return l
}

// Status reports the source's state. It is safe for concurrent use.
func (l *Logical) Status() Status { return l.snapshot() }

// Run streams changes to sink until ctx ends; see [Source]. Connection,
// server and sink errors end the current session; Run then reconnects with
// exponential backoff and resumes from the last confirmed position, so
// unconfirmed transactions are delivered again. It returns nil when ctx
// ends, after a final standby status update, and an error at once for an
// unusable configuration or when already running.
func (l *Logical) Run(ctx context.Context, sink Sink) error {
	if sink == nil {
		return errors.New("decoder: logical: nil sink")
	}
	if !slotNameRE.MatchString(l.cfg.Slot) {
		return fmt.Errorf("decoder: logical: invalid slot name %q (want [a-z0-9_], 1-63 bytes)", l.cfg.Slot)
	}
	if l.cfg.Publication == "" || len(l.cfg.Publication) > 63 || strings.ContainsRune(l.cfg.Publication, 0) {
		return fmt.Errorf("decoder: logical: invalid publication name %q", l.cfg.Publication)
	}
	dbCfg, err := pgx.ParseConfig(l.cfg.DBURL)
	if err != nil {
		return fmt.Errorf("decoder: logical: parse database url: %w", err)
	}
	replCfg, err := pgconn.ParseConfig(l.cfg.DBURL)
	if err != nil {
		return fmt.Errorf("decoder: logical: parse database url: %w", err)
	}
	for k, v := range sessionParams {
		dbCfg.RuntimeParams[k] = v
		replCfg.RuntimeParams[k] = v
	}
	if replCfg.RuntimeParams["application_name"] == "" {
		replCfg.RuntimeParams["application_name"] = "realtime_" + l.cfg.Slot
	}
	for k, v := range l.cfg.ReplicationParams {
		replCfg.RuntimeParams[k] = v
	}
	replCfg.RuntimeParams["replication"] = "database"
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("decoder: logical: already running")
	}
	defer l.running.Store(false)

	return retryLoop(ctx, l.log, "replication session", standingBy, l.cfg.RetryMin, l.cfg.RetryMax,
		func() (bool, error) { return l.session(ctx, dbCfg, replCfg, sink) }, recordError(l.update))
}

// ErrSlotInUse is wrapped by the session error of a logical source whose
// slot another connection is reading (SQLSTATE 55006): in a cluster, the
// node holding it.
var ErrSlotInUse = errors.New("decoder: replication slot in use by another reader")

// ErrGated is wrapped by the session error of a logical source whose Gate
// refused the attempt.
var ErrGated = errors.New("decoder: session not attempted")

// standingBy reports session errors that are the normal state of a node
// waiting for a slot another node holds: they are logged at debug level.
func standingBy(err error) bool { return errors.Is(err, ErrSlotInUse) || errors.Is(err, ErrGated) }

// session runs one connection lifetime. progressed reports that the session
// streamed and either delivered something or lasted longer than RetryMax,
// so the backoff can start over.
func (l *Logical) session(ctx context.Context, dbCfg *pgx.ConnConfig, replCfg *pgconn.Config, sink Sink) (progressed bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if l.cfg.Gate != nil {
		if err := l.cfg.Gate(sctx); err != nil {
			return false, fmt.Errorf("%w: %w", ErrGated, err)
		}
	}
	db, err := pgx.ConnectConfig(sctx, dbCfg)
	if err != nil {
		return false, fmt.Errorf("decoder: connect: %w", err)
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		db.Close(cctx)
		ccancel()
	}()
	if err := ensurePublication(sctx, db, l.cfg.Publication); err != nil {
		return false, err
	}
	slotLSN, err := ensureSlot(sctx, db, l.cfg.Slot)
	if err != nil {
		return false, err
	}
	// Another consumer may have moved the slot on; never go back.
	l.advance(slotLSN)

	repl, err := pgconn.ConnectConfig(sctx, replCfg)
	if err != nil {
		return false, fmt.Errorf("decoder: connect for replication: %w", err)
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		repl.Close(cctx)
		ccancel()
	}()
	start, err := l.startReplication(sctx, db, repl)
	if err != nil {
		return false, err
	}

	began := time.Now()
	l.update(func(st *Status) {
		st.Connected = true
		st.ConnectedSince = began
		st.Sessions++
	})
	l.log.Info("replication streaming", "lsn", start.String())
	if l.cfg.OnState != nil {
		l.cfg.OnState(true)
	}
	defer func() {
		l.update(func(st *Status) {
			st.Connected = false
			st.ConnectedSince = time.Time{}
		})
		if l.cfg.OnState != nil {
			l.cfg.OnState(false)
		}
	}()

	s := &stream{l: l, conn: repl, db: db, sink: sink}
	err = s.run(ctx, sctx)
	return s.delivered || time.Since(began) > l.cfg.RetryMax, err
}

// startReplication starts streaming the slot on repl from the confirmed
// position, which it returns. A slot read by another connection fails with
// ErrSlotInUse.
func (l *Logical) startReplication(sctx context.Context, db *pgx.Conn, repl *pgconn.PgConn) (LSN, error) {
	start := LSN(l.confirmed.Load())
	pubs := pgx.Identifier{l.cfg.Publication}.Sanitize()
	for _, p := range l.cfg.ExtraPublications {
		pubs += "," + pgx.Identifier{p}.Sanitize()
	}
	pubLit := "'" + strings.ReplaceAll(pubs, "'", "''") + "'"
	err := pglogrepl.StartReplication(sctx, repl, l.cfg.Slot, start, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '1'", "publication_names " + pubLit},
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" {
			err = fmt.Errorf("%w (%s)", ErrSlotInUse, pgErr.Message)
		}
		return 0, fmt.Errorf("decoder: start replication on slot %s at %s: %w", l.cfg.Slot, start, err)
	}
	// PostgreSQL streams from the later of start and the slot's confirmed
	// position when it was acquired, which another reader may have moved
	// on since it was looked up. The session holds the slot now, so its
	// confirmed position stands still: take it, so that the confirmed
	// position (what OnState's callee reads as where the session streams
	// from) is never before the first change the session delivers.
	slotLSN, err := ensureSlot(sctx, db, l.cfg.Slot)
	if err != nil {
		return 0, err
	}
	l.advance(slotLSN)
	return start, nil
}

// ensurePublication creates the publication, empty, if it does not exist.
func ensurePublication(ctx context.Context, db *pgx.Conn, name string) error {
	var exists bool
	if err := db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("decoder: look up publication %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := db.Exec(ctx, "CREATE PUBLICATION "+pgx.Identifier{name}.Sanitize()); err != nil && !isDuplicate(err) {
		return fmt.Errorf("decoder: create publication %s: %w", name, err)
	}
	return nil
}

// ensureSlot creates the persistent pgoutput slot if it does not exist and
// returns its confirmed_flush_lsn.
func ensureSlot(ctx context.Context, db *pgx.Conn, slot string) (LSN, error) {
	for attempt := 0; ; attempt++ {
		var plugin, slotType, database, confirmed string
		var dbName string
		err := db.QueryRow(ctx, `SELECT coalesce(s.plugin::text, ''), s.slot_type, coalesce(s.database::text, ''),
			coalesce(s.confirmed_flush_lsn::text, '0/0'), current_database()::text
			FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = $1`, slot).
			Scan(&plugin, &slotType, &database, &confirmed, &dbName)
		if errors.Is(err, pgx.ErrNoRows) {
			if attempt > 0 {
				return 0, fmt.Errorf("decoder: slot %s vanished after creation", slot)
			}
			_, err := db.Exec(ctx, "SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')", slot)
			if err != nil && !isDuplicate(err) {
				return 0, fmt.Errorf("decoder: create slot %s: %w", slot, err)
			}
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("decoder: look up slot %s: %w", slot, err)
		}
		if slotType != "logical" || plugin != "pgoutput" || database != dbName {
			return 0, fmt.Errorf("decoder: slot %s is a %s slot for plugin %q on database %q, want logical pgoutput on %q",
				slot, slotType, plugin, database, dbName)
		}
		lsn, err := ParseLSN(confirmed)
		if err != nil {
			return 0, fmt.Errorf("decoder: slot %s: %w", slot, err)
		}
		return lsn, nil
	}
}

func isDuplicate(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42710" // duplicate_object
}

// stream is one streaming session. The reader goroutine is the only one
// receiving from conn; writes (standby status updates) are serialized by
// writeMu; the Run goroutine decodes, batches and calls the sink.
type stream struct {
	l    *Logical
	conn *pgconn.PgConn
	db   *pgx.Conn // type loading; used by the Run goroutine only
	sink Sink

	writeMu sync.Mutex // guards writes to conn

	// Run goroutine state.
	txn       *txnState
	batch     []Change
	xids      []int64 // transaction ids of the changes in batch
	pending   LSN     // newest received commit end not yet confirmed, 0 if none
	lastTxn   time.Time
	txnCount  int64
	delivered bool
}

type txnState struct {
	xid        uint32
	commitTime time.Time
	changes    []Change
}

// event is what the reader hands to the Run goroutine: a copied WAL
// message or a keepalive.
type event struct {
	keepalive bool
	walEnd    LSN
	reply     bool   // keepalive asked for a reply
	data      []byte // pgoutput message, owned by the event
}

// eventBuffer is how many received WAL messages may wait for the Run
// goroutine. While the sink works on a batch the reader keeps receiving, so
// under a backlog the next batch merges every transaction that arrived
// meanwhile (up to MaxBatch changes): a sink's per-batch cost, such as one
// row-check statement per claims group (docs/protocol.md §4.5), is then paid
// once for many transactions.
const eventBuffer = 4096

// run streams until ctx (the Run context) ends or an error. sctx is the
// session context; run cancels it before returning.
func (s *stream) run(ctx, sctx context.Context) error {
	sctx, cancel := context.WithCancelCause(sctx)
	events := make(chan event, eventBuffer)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := s.readLoop(sctx, events); err != nil {
			cancel(err)
		}
	}()
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.l.cfg.StandbyInterval)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				if err := s.sendStatus(); err != nil {
					cancel(err)
					return
				}
			}
		}
	}()
	err := s.loop(ctx, sctx, events)
	cancel(err)
	wg.Wait()
	if ctx.Err() != nil {
		// Shutting down: tell the server where we are one last time. The
		// reader has returned, so the connection is ours alone.
		if serr := s.sendStatus(); serr != nil {
			s.l.log.Debug("final standby status failed", "err", serr)
		}
		return nil
	}
	return err
}

// readLoop receives replication messages and hands them over as events.
func (s *stream) readLoop(ctx context.Context, events chan<- event) error {
	for {
		msg, err := s.conn.ReceiveMessage(ctx)
		if err != nil {
			return fmt.Errorf("decoder: receive: %w", err)
		}
		var ev event
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				return errors.New("decoder: receive: empty CopyData")
			}
			switch m.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				k, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return fmt.Errorf("decoder: keepalive: %w", err)
				}
				ev = event{keepalive: true, walEnd: k.ServerWALEnd, reply: k.ReplyRequested}
			case pglogrepl.XLogDataByteID:
				x, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return fmt.Errorf("decoder: xlogdata: %w", err)
				}
				// WALData aliases the receive buffer: copy it.
				ev = event{walEnd: x.ServerWALEnd, data: append([]byte(nil), x.WALData...)}
			default:
				return fmt.Errorf("decoder: receive: unknown CopyData type %q", m.Data[0])
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("decoder: server error: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone:
			return errors.New("decoder: server ended the replication stream")
		default:
			continue // notices, parameter status
		}
		select {
		case events <- ev:
		case <-ctx.Done():
			return nil
		}
	}
}

// sendStatus reports the confirmed position as written, flushed and
// applied. Safe to call from any goroutine of the session.
func (s *stream) sendStatus() error {
	if s.conn == nil {
		return nil // unit tests drive the loop without a connection
	}
	pos := LSN(s.l.confirmed.Load())
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pos,
		WALFlushPosition: pos,
		WALApplyPosition: pos,
	})
	if err != nil {
		return fmt.Errorf("decoder: send standby status: %w", err)
	}
	return nil
}

// loop decodes events, groups committed transactions into batches and
// delivers them. A batch is delivered when it reaches MaxBatch changes or
// when no further event is already waiting.
func (s *stream) loop(ctx, sctx context.Context, events <-chan event) error {
	for {
		if s.pending != 0 && (len(s.batch) >= s.l.cfg.MaxBatch || len(events) == 0) {
			if err := s.flush(ctx); err != nil {
				return err
			}
			continue
		}
		select {
		case <-sctx.Done():
			return context.Cause(sctx)
		case ev := <-events:
			if err := s.handle(ctx, sctx, ev); err != nil {
				return err
			}
		}
	}
}

// flush hands the batch to the sink and confirms its position.
func (s *stream) flush(ctx context.Context) error {
	batch, pos, xids := s.batch, s.pending, s.xids
	s.batch, s.xids = nil, nil
	if len(batch) > 0 {
		// The sink gets the Run context, not the session's: a dying
		// connection must not interrupt a fan-out half way. It waits for
		// visibility only when it reads live rows (docs/protocol.md §4.5).
		sctx := WithVisibility(ctx, func() error {
			s.l.update(func(st *Status) { st.VisibilityWaits++ })
			return s.waitVisible(ctx, xids)
		})
		if err := s.sink(sctx, batch); err != nil {
			return fmt.Errorf("decoder: sink: %w", err)
		}
		s.delivered = true
	}
	s.pending = 0
	if err := s.l.settle(pos); err != nil {
		return err
	}
	txns, last := s.txnCount, s.lastTxn
	s.txnCount = 0
	s.l.update(func(st *Status) {
		st.Transactions += txns
		st.Changes += int64(len(batch))
		if !last.IsZero() {
			st.LastCommitTime = last
		}
	})
	return s.sendStatus()
}

// visibleQuery is true when every given transaction (32-bit ids, as
// pgoutput sends them) is visible to a new snapshot: completed before it
// was taken. A 32-bit id is widened to the snapshot's epoch (or the one
// before, when it would lie at or past xmax) and checked with
// pg_visible_in_snapshot, which tests both xmax and the running list.
const visibleQuery = `SELECT coalesce(bool_and(pg_catalog.pg_visible_in_snapshot((
    CASE WHEN (((m.xmax >> 32) << 32) | x) >= m.xmax THEN (((m.xmax >> 32) << 32) | x) - 4294967296
         ELSE ((m.xmax >> 32) << 32) | x END)::text::xid8, m.snap)), true)
  FROM (SELECT s AS snap, pg_catalog.pg_snapshot_xmax(s)::text::bigint AS xmax FROM pg_catalog.pg_current_snapshot() s) m,
       unnest($1::bigint[]) x`

// waitVisible waits until the batch's transactions are visible to new
// snapshots. The walsender may send a commit a moment before the
// committing backend leaves the proc array; a query that read the live row
// in that window would not find it. Only the sink asks for it, through
// [AwaitVisible], when it reads live rows. Usually the first query says yes;
// the wait is bounded.
func (s *stream) waitVisible(ctx context.Context, xids []int64) error {
	if len(xids) == 0 || s.db == nil { // no database: unit tests of the loop
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var visible bool
		if err := s.db.QueryRow(ctx, visibleQuery, xids).Scan(&visible); err != nil {
			return fmt.Errorf("decoder: wait for commit visibility: %w", err)
		}
		if visible || time.Now().After(deadline) {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
}

// settle confirms pos, or hands it to the Confirmer; an error of the
// Confirmer ends the session.
func (l *Logical) settle(pos LSN) error {
	if l.cfg.Confirmer != nil {
		if err := l.cfg.Confirmer(pos); err != nil {
			return fmt.Errorf("decoder: confirm %s: %w", pos, err)
		}
		return nil
	}
	l.advance(pos)
	return nil
}

// Confirm raises the confirmed position to pos (never lowers it); the next
// standby status update reports it. For a source with a Confirmer; safe
// for concurrent use.
func (l *Logical) Confirm(pos LSN) { l.advance(pos) }

// advance raises the confirmed position to pos; it never lowers it.
func (l *Logical) advance(pos LSN) {
	for {
		cur := l.confirmed.Load()
		if uint64(pos) <= cur || l.confirmed.CompareAndSwap(cur, uint64(pos)) {
			return
		}
	}
}

// handle processes one event. ctx is the Run context (for the sink), sctx
// the session's (for queries).
func (s *stream) handle(ctx, sctx context.Context, ev event) error {
	s.l.update(func(st *Status) {
		if uint64(ev.walEnd) > st.ServerPosition {
			st.ServerPosition = uint64(ev.walEnd)
		}
	})
	if ev.keepalive {
		// Everything the server sent before the keepalive has been
		// received. With no transaction open or waiting for the sink, all
		// of it is confirmed, so the server's position may be confirmed
		// too; otherwise an idle slot on a busy server would hold WAL.
		if s.txn == nil && s.pending == 0 {
			if err := s.l.settle(ev.walEnd); err != nil {
				return err
			}
		}
		if ev.reply {
			return s.sendStatus()
		}
		return nil
	}
	msg, err := parseMessage(ev.data)
	if err != nil {
		return err
	}
	switch m := msg.(type) {
	case beginMsg:
		if s.txn != nil {
			return errors.New("decoder: begin inside a transaction")
		}
		s.txn = &txnState{xid: m.xid, commitTime: m.commitTime}
	case commitMsg:
		if s.txn == nil {
			return errors.New("decoder: commit outside a transaction")
		}
		if len(s.batch) > 0 && len(s.batch)+len(s.txn.changes) > s.l.cfg.MaxBatch {
			// Deliver what is waiting first rather than overfill the batch.
			if err := s.flush(ctx); err != nil {
				return err
			}
		}
		for i := range s.txn.changes {
			s.txn.changes[i].Position = uint64(m.endLSN)
		}
		s.batch = append(s.batch, s.txn.changes...)
		if len(s.txn.changes) > 0 {
			s.xids = append(s.xids, int64(s.txn.xid))
		}
		s.txn = nil
		s.pending = m.endLSN
		s.lastTxn = m.commitTime
		s.txnCount++
		s.l.update(func(st *Status) { st.ReceivedPosition = uint64(m.endLSN) })
	case relationMsg:
		return s.relation(sctx, m)
	case typeMsg:
		s.l.types.Invalidate(m.oid)
	case insertMsg:
		e, err := s.change(m.relation)
		if err != nil {
			return err
		}
		nv, err := rowValues(e, m.tuple, false)
		if err != nil {
			return fmt.Errorf("decoder: insert into %s.%s: %w", e.rel.Schema, e.rel.Table, err)
		}
		s.add(Change{Kind: Insert, Rel: e.rel, New: nv})
	case updateMsg:
		e, err := s.change(m.relation)
		if err != nil {
			return err
		}
		nv, err := rowValues(e, m.tuple, false)
		if err != nil {
			return fmt.Errorf("decoder: update of %s.%s: %w", e.rel.Schema, e.rel.Table, err)
		}
		var ov []Value
		if m.oldKind != 0 {
			if ov, err = rowValues(e, m.old, m.oldKind == 'K'); err != nil {
				return fmt.Errorf("decoder: update of %s.%s: old image: %w", e.rel.Schema, e.rel.Table, err)
			}
			// Unchanged TOAST values are not in the new image; a full old
			// image has them.
			for i := range nv {
				if nv[i].Absent && !ov[i].Absent {
					nv[i] = ov[i]
				}
			}
		}
		s.add(Change{Kind: Update, Rel: e.rel, New: nv, Old: ov})
	case deleteMsg:
		e, err := s.change(m.relation)
		if err != nil {
			return err
		}
		ov, err := rowValues(e, m.old, m.oldKind == 'K')
		if err != nil {
			return fmt.Errorf("decoder: delete from %s.%s: %w", e.rel.Schema, e.rel.Table, err)
		}
		s.add(Change{Kind: Delete, Rel: e.rel, Old: ov})
	case ignoredMsg:
	}
	return nil
}

func (s *stream) change(relOID uint32) (*relEntry, error) {
	if s.txn == nil {
		return nil, errors.New("decoder: row change outside a transaction")
	}
	e := s.l.rels[relOID]
	if e == nil {
		return nil, fmt.Errorf("decoder: row change for unknown relation %d", relOID)
	}
	return e, nil
}

func (s *stream) add(c Change) {
	c.CommitTime = s.txn.commitTime
	s.txn.changes = append(s.txn.changes, c)
}

// relation replaces the cached relation with a new snapshot.
func (s *stream) relation(ctx context.Context, m relationMsg) error {
	rel := &Relation{
		OID:             m.oid,
		Schema:          m.namespace,
		Table:           m.name,
		ReplicaIdentity: m.replIdent,
		Columns:         make([]Column, len(m.columns)),
	}
	oids := make([]uint32, len(m.columns))
	for i, c := range m.columns {
		oids[i] = c.typeOID
	}
	var q Querier // stays nil without a connection (unit tests)
	if s.db != nil {
		q = s.db
	}
	if err := s.l.types.Load(ctx, q, oids...); err != nil {
		return fmt.Errorf("decoder: relation %s.%s: %w", m.namespace, m.name, err)
	}
	types := make([]*TypeInfo, len(m.columns))
	for i, c := range m.columns {
		t, err := s.l.types.Get(ctx, q, c.typeOID)
		if err != nil {
			return fmt.Errorf("decoder: relation %s.%s column %s: %w", m.namespace, m.name, c.name, err)
		}
		types[i] = t
		rel.Columns[i] = Column{Name: c.name, Type: t.Name, TypeOID: c.typeOID, Key: c.flags&1 != 0}
	}
	s.l.rels[m.oid] = &relEntry{rel: rel, types: types}
	if s.l.cfg.OnRelation != nil {
		s.l.cfg.OnRelation(rel)
	}
	return nil
}

// rowValues converts a tuple to values aligned with the relation's columns.
// In a key-only image, non-key columns are Absent.
func rowValues(e *relEntry, cols []tupleColumn, keyOnly bool) ([]Value, error) {
	if len(cols) != len(e.rel.Columns) {
		return nil, fmt.Errorf("tuple has %d columns, relation %d", len(cols), len(e.rel.Columns))
	}
	vals := make([]Value, len(cols))
	for i, c := range cols {
		if keyOnly && !e.rel.Columns[i].Key {
			vals[i] = Value{Absent: true}
			continue
		}
		switch c.kind {
		case 'n':
			vals[i] = Value{Null: true, JSON: []byte("null")}
		case 'u':
			vals[i] = Value{Absent: true}
		case 't':
			vals[i] = TextValue(string(c.data), e.types[i])
		default:
			return nil, fmt.Errorf("column %s: unsupported tuple format %q", e.rel.Columns[i].Name, c.kind)
		}
	}
	return vals, nil
}
