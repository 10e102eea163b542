package policy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Statements of a batched read probe (docs/protocol.md §9.2 "Batched read
// probes"). Every parameter is sent as text and typed by the statement.
const (
	selectProbeSQL = `SELECT id::text FROM realtime.messages WHERE id IN ($1::uuid, $2::uuid) AND inserted_at = $3::timestamp`
	contextSQL     = `SELECT set_config('role', $1::text, true), set_config('realtime.topic', $2::text, true),
set_config('request.jwt.claims', $3::text, true), set_config('request.jwt.claim.sub', coalesce($4::text, ''), true),
set_config('request.jwt.claim.role', $1::text, true), set_config('request.headers', $5::text, true)`
)

// pipelineRead evaluates batch in one transaction sent as one pipeline and
// read back in one round trip: BEGIN, the probe rows of every job inserted
// as the pool user, SAVEPOINT; then per job, as one segment ending in a
// sync point, ROLLBACK TO SAVEPOINT (from the second job on), its context
// set and its rows selected back as its role; finally ROLLBACK. Each job
// thus sees only its own role, claims, topic and headers and nothing the
// policies of the jobs before it did, and a policy raising for one job
// fails only that job's segment: the next segment's rollback to the
// savepoint recovers the transaction. err is non-nil only when the batch
// failed as a whole (no job answered).
func (p *Prober) pipelineRead(ctx context.Context, batch []*readJob) ([]readResult, error) {
	c, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: acquire read probe connection: %v", ErrUnavailable, err)
	}
	// A connection left inside a transaction (a broken pipeline) is
	// destroyed by the pool on release rather than reused.
	defer c.Release()
	// Prepared once per connection (pgx remembers them): parsed once, and
	// the plan is cached while the role stays the same.
	ctxStmt, err := c.Conn().Prepare(ctx, "realtime_probe_context", contextSQL)
	if err != nil {
		return nil, classify("prepare probe context", err)
	}
	selStmt, err := c.Conn().Prepare(ctx, "realtime_probe_select", selectProbeSQL)
	if err != nil {
		return nil, classify("prepare read probe", err)
	}
	pl := c.Conn().PgConn().StartPipeline(ctx)
	defer pl.Close()
	send := func(sql string, args ...[]byte) { pl.SendQueryParams(sql, args, nil, nil, nil) }
	send("BEGIN")
	at := []byte(time.Now().UTC().Format("2006-01-02 15:04:05.999999"))
	ins, args := insertProbes(batch, at)
	send(ins, args...)
	send("SAVEPOINT probe")
	pl.SendPipelineSync()
	for i, j := range batch {
		if i > 0 {
			send("ROLLBACK TO SAVEPOINT probe")
		}
		pl.SendQueryStatement(ctxStmt, contextParams(j.r), nil, nil)
		pid := j.pid
		if pid == "" {
			pid = j.bid
		}
		pl.SendQueryStatement(selStmt, [][]byte{[]byte(j.bid), []byte(pid), at}, nil, nil)
		pl.SendPipelineSync()
	}
	send("ROLLBACK")
	pl.SendPipelineSync()
	if err := pl.Flush(); err != nil {
		return nil, fmt.Errorf("%w: send read probes: %v", ErrUnavailable, err)
	}
	if _, err := readSegment(pl, []string{"begin read probe", "insert read probe", "savepoint"}, nil); err != nil {
		return nil, err
	}
	out := make([]readResult, len(batch))
	steps := []string{"rollback to savepoint", "set probe context", "select read probe"}
	for i, j := range batch {
		var ids []string
		onRows := func(rr *pgconn.ResultReader) {
			for rr.NextRow() {
				ids = append(ids, string(rr.Values()[0]))
			}
		}
		st := steps
		if i == 0 {
			st = steps[1:]
		}
		failed, err := readSegment(pl, st, onRows)
		switch {
		case err == nil:
		case failed < 0 || st[failed] == "rollback to savepoint":
			return nil, err
		default:
			out[i].err = err
			continue
		}
		for _, id := range ids {
			switch {
			case id == j.bid:
				out[i].broadcast = true
			case j.pid != "" && id == j.pid:
				out[i].presence = true
			}
		}
	}
	readPaths.insert.Add(int64(len(batch)))
	// Every job has its answer: a failed ROLLBACK leaves the connection
	// inside the transaction, and the pool destroys it on release.
	readSegment(pl, []string{"rollback read probe"}, nil)
	return out, nil
}

// readSegment reads the results of one segment's statements (named by
// what, the last one's rows to onRows) and its sync point. A statement
// that failed on the server is reported by index with its classified
// error (the server skipped the rest of the segment); failed is -1 when
// the pipeline itself broke.
func readSegment(pl *pgconn.Pipeline, what []string, onRows func(*pgconn.ResultReader)) (failed int, err error) {
	failed = -1
	for k, w := range what {
		res, gerr := pl.GetResults()
		switch v := res.(type) {
		case *pgconn.ResultReader:
			if onRows != nil && k == len(what)-1 {
				onRows(v)
			}
			_, gerr = v.Close()
		case nil:
			if gerr == nil {
				gerr = errors.New("missing result")
			}
		default:
			gerr = fmt.Errorf("unexpected result %T", res)
		}
		if gerr == nil {
			continue
		}
		if !isPgError(gerr) {
			return -1, classify(w, gerr)
		}
		failed, err = k, classify(w, gerr)
		break
	}
	sync, gerr := pl.GetResults()
	if _, ok := sync.(*pgconn.PipelineSync); !ok {
		if gerr == nil {
			gerr = fmt.Errorf("expected sync point, got %T", sync)
		}
		return -1, classify(what[len(what)-1], gerr)
	}
	return failed, err
}

// insertProbes returns the INSERT of every job's probe rows and its
// parameters.
func insertProbes(batch []*readJob, at []byte) (string, [][]byte) {
	var sb strings.Builder
	sb.WriteString("INSERT INTO realtime.messages (topic, extension, updated_at, inserted_at, id) VALUES ")
	args := [][]byte{at}
	row := func(topic, ext, id string) {
		if len(args) > 1 {
			sb.WriteString(", ")
		}
		n := len(args)
		sb.WriteString("($" + strconv.Itoa(n+1) + "::text, $" + strconv.Itoa(n+2) +
			"::text, $1::timestamp, $1::timestamp, $" + strconv.Itoa(n+3) + "::uuid)")
		args = append(args, []byte(topic), []byte(ext), []byte(id))
	}
	for _, j := range batch {
		row(j.r.Topic, "broadcast", j.bid)
		if j.pid != "" {
			row(j.r.Topic, "presence", j.pid)
		}
	}
	return sb.String(), args
}

// contextParams are the text parameters of contextSQL for r.
func contextParams(r *Request) [][]byte {
	claims, headers, sub := contextValues(r)
	var s []byte
	if sub != "" {
		s = []byte(sub)
	}
	return [][]byte{[]byte(r.Role), []byte(r.Topic), []byte(claims), s, []byte(headers)}
}

// isPgError reports whether err came from the server (a statement failed)
// rather than from the connection.
func isPgError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe)
}
