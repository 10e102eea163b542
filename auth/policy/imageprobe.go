package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// fingerprintStmt names the prepared fingerprintSQL.
const fingerprintStmt = "realtime_probe_fingerprint"

// errCatalogChanged means the catalog fingerprint changed between loading
// the image plans and running a batch: its answers are discarded.
var errCatalogChanged = errors.New("realtime.messages catalog changed")

// errNoImage means the batch cannot be imaged at all (triggers on the
// table, unreadable partition bounds, no partition for the probe time).
var errNoImage = errors.New("read probes cannot be imaged")

// imageRead judges batch's probes without inserting anything
// (docs/protocol.md §9.2 "Image read probes"): each probe row is built as
// a VALUES row and its role's SELECT policies, read from the catalog, are
// evaluated on it by PostgreSQL, under the probe's context. One pipeline:
// the catalog fingerprint (its own sync point), then per probe one segment
// — its context set, read-only, and its image statement — ending in a sync
// point, so each segment is an implicit transaction of its own: settings
// and anything a policy does end with it, and a policy raising fails only
// that probe. rest lists the indices of the jobs whose role's policies
// cannot be imaged (their results are left zero for the insert path). A
// non-nil err means no job was answered.
func (p *Prober) imageRead(ctx context.Context, batch []*readJob) (out []readResult, rest []int, err error) {
	c, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: acquire read probe connection: %v", ErrUnavailable, err)
	}
	defer c.Release()
	var roles []string
	seen := map[string]bool{}
	for _, j := range batch {
		if !seen[j.r.Role] {
			seen[j.r.Role] = true
			roles = append(roles, j.r.Role)
		}
	}
	st, err := p.image.plans(ctx, c, roles)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now().UTC()
	if !st.usable || !st.parts.covers(now) {
		return nil, nil, errNoImage
	}
	conn := c.Conn()
	fpStmt, err := conn.Prepare(ctx, fingerprintStmt, fingerprintSQL)
	if err != nil {
		return nil, nil, classify("prepare catalog fingerprint", err)
	}
	ctxStmt, err := conn.Prepare(ctx, "realtime_probe_image_context", imageContextSQL)
	if err != nil {
		return nil, nil, classify("prepare image probe context", err)
	}
	stmts := make([]*pgconn.StatementDescription, len(batch))
	for i, j := range batch {
		plan := st.roles[j.r.Role]
		if plan.insert {
			rest = append(rest, i)
			continue
		}
		sql := plan.one
		if j.pid != "" {
			sql = plan.two
		}
		if stmts[i], err = conn.Prepare(ctx, statementName(sql), sql); err != nil {
			return nil, nil, classify("prepare image probe", err)
		}
	}
	at := []byte(now.Format("2006-01-02 15:04:05.999999"))
	pl := conn.PgConn().StartPipeline(ctx)
	defer pl.Close()
	pl.SendQueryStatement(fpStmt, nil, nil, nil)
	pl.SendPipelineSync()
	for i, j := range batch {
		if stmts[i] == nil {
			continue
		}
		pl.SendQueryStatement(ctxStmt, contextParams(j.r), nil, nil)
		params := [][]byte{[]byte(j.r.Topic), []byte(j.bid), at}
		if j.pid != "" {
			params = append(params, []byte(j.pid))
		}
		pl.SendQueryStatement(stmts[i], params, nil, nil)
		pl.SendPipelineSync()
	}
	if err := pl.Flush(); err != nil {
		return nil, nil, fmt.Errorf("%w: send image probes: %v", ErrUnavailable, err)
	}
	var fp string
	if _, err := readSegment(pl, []string{"catalog fingerprint"}, func(rr *pgconn.ResultReader) {
		for rr.NextRow() {
			fp = string(rr.Values()[0])
		}
	}); err != nil {
		return nil, nil, err
	}
	out, err = readImages(pl, stmts)
	if err != nil {
		return nil, nil, err
	}
	if fp != st.fp {
		p.image.drop(st)
		// The statement resolved realtime.messages when it was prepared:
		// prepare it again next time, in case the table was replaced.
		if pl.Close() == nil {
			conn.Deallocate(ctx, fingerprintStmt)
		}
		return nil, nil, errCatalogChanged
	}
	return out, rest, nil
}

// readImages reads the segment of every job that has an image statement
// (stmts[i] non-nil) and returns the answers; err is non-nil when the
// pipeline itself broke.
func readImages(pl *pgconn.Pipeline, stmts []*pgconn.StatementDescription) ([]readResult, error) {
	out := make([]readResult, len(stmts))
	for i := range stmts {
		if stmts[i] == nil {
			continue
		}
		var priv string
		var exts string
		onRows := func(rr *pgconn.ResultReader) {
			for rr.NextRow() {
				priv, exts = string(rr.Values()[0]), string(rr.Values()[1])
			}
		}
		failed, err := readSegment(pl, []string{"set probe context", "image read probe"}, onRows)
		switch {
		case err == nil:
		case failed < 0:
			return nil, err
		default:
			out[i].err = err
			continue
		}
		if priv != "t" {
			out[i].err = fmt.Errorf("%w: image read probe: permission denied for table messages", ErrPolicy)
			continue
		}
		for _, e := range strings.Split(strings.Trim(exts, "{}"), ",") {
			switch e {
			case "broadcast":
				out[i].broadcast = true
			case "presence":
				out[i].presence = true
			}
		}
	}
	return out, nil
}
