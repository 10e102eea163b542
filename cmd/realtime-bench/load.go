package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openrealtime/realtime/realtime/phoenix"
)

// sender produces the messages of one worker. Implementations own their
// connection; run returns when the schedule is done or has stopped.
type sender interface {
	run(ctx context.Context, seq *ownedSeq, sch schedule, total int64, l *Ledger)
}

// loadRun is the outcome of the generator.
type loadRun struct {
	Start, End time.Time
	Errors     []string
}

// generate runs every sender on its share of the messages and returns when
// all have finished (bounded by the schedule's stop time).
func generate(ctx context.Context, cfg *config, senders []sender, seqs []*ownedSeq, l *Ledger, rec *recorder) loadRun {
	start := time.Now().Add(50 * time.Millisecond)
	sch := schedule{start: start, rate: cfg.Rate, stop: start.Add(cfg.Duration + time.Second)}
	rec.start(start)
	var wg sync.WaitGroup
	for j, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(ctx, seqs[j], sch, cfg.totalMessages(), l)
		}()
	}
	wg.Wait()
	return loadRun{Start: start, End: time.Now()}
}

// firstErr keeps the first few distinct send errors for the report.
type firstErr struct {
	mu   sync.Mutex
	errs []string
}

func (f *firstErr) add(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := err.Error()
	if len(f.errs) >= 5 {
		return
	}
	for _, e := range f.errs {
		if e == s {
			return
		}
	}
	f.errs = append(f.errs, s)
}

func (f *firstErr) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.errs...)
}

// wsSender broadcasts kind-3 frames on its own connection, on the channels
// it joined (ack false, self false: as supabase-js sends by default).
type wsSender struct {
	conn  *wsConn
	chans map[int64]*wsChannel // by key
	cfg   *config
	errs  *firstErr
}

func (s *wsSender) run(ctx context.Context, seq *ownedSeq, sch schedule, total int64, l *Ledger) {
	var payload, frame []byte
	for ctx.Err() == nil {
		m := seq.next()
		if m >= total || !sch.waitFor(m) {
			return
		}
		ch := s.chans[int64(l.KeyOf(m))]
		payload = appendMarker(payload[:0], m, time.Now(), s.cfg.PayloadSize)
		var err error
		frame, err = phoenix.AppendBroadcastPush(frame[:0], ch.joinRef, s.conn.nextRef(), ch.topic, "bench", nil, phoenix.EncodingJSON, payload)
		if err == nil {
			err = s.conn.write(websocket.BinaryMessage, frame)
		}
		if err != nil {
			l.MarkFailed()
			s.errs.add(err)
			if s.conn.closing.Load() || isClosed(s.conn) {
				return
			}
			continue
		}
		l.MarkSent(m)
	}
}

func isClosed(c *wsConn) bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// restClient posts REST broadcasts; keep-alive, no redirects.
func restClient(workers int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext:         dialLocal, // project.go
			MaxIdleConnsPerHost: workers,
			MaxConnsPerHost:     workers,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// restSender posts batches to POST /realtime/v1/api/broadcast.
type restSender struct {
	client *http.Client
	url    string
	apikey string
	cfg    *config
	errs   *firstErr
}

func (s *restSender) run(ctx context.Context, seq *ownedSeq, sch schedule, total int64, l *Ledger) {
	var body bytes.Buffer
	ms := make([]int64, 0, s.cfg.RESTBatch)
	var payload []byte
	for ctx.Err() == nil {
		ms = ms[:0]
		for len(ms) < s.cfg.RESTBatch {
			m := seq.next()
			if m >= total {
				break
			}
			ms = append(ms, m)
		}
		if len(ms) == 0 || !sch.waitFor(ms[len(ms)-1]) {
			return
		}
		body.Reset()
		body.WriteString(`{"messages":[`)
		now := time.Now()
		for i, m := range ms {
			if i > 0 {
				body.WriteByte(',')
			}
			body.WriteString(`{"topic":`)
			body.Write(phoenix.AppendJSONString(nil, s.cfg.channelName(l.KeyOf(m))))
			body.WriteString(`,"event":"bench","private":false,"payload":`)
			payload = appendMarker(payload[:0], m, now, s.cfg.PayloadSize)
			body.Write(payload)
			body.WriteByte('}')
		}
		body.WriteString(`]}`)
		err := s.post(ctx, body.Bytes())
		for _, m := range ms {
			if err != nil {
				l.MarkFailed()
			} else {
				l.MarkSent(m)
			}
		}
		if err != nil {
			s.errs.add(err)
		}
	}
}

func (s *restSender) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("apikey", s.apikey)
	req.Header.Set("Authorization", "Bearer "+s.apikey)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("REST broadcast: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return nil
}

// dbSender inserts or updates rows on its own database connection.
type dbSender struct {
	w      *dbWriter
	update bool
	batch  int
	errs   *firstErr
}

func (s *dbSender) run(ctx context.Context, seq *ownedSeq, sch schedule, total int64, l *Ledger) {
	defer s.w.conn.Release()
	ms := make([]int64, 0, s.batch)
	users := make([]string, 0, s.batch)
	ids := make([]int64, 0, s.batch)
	sent := make([]int64, 0, s.batch)
	for ctx.Err() == nil {
		ms, users, ids, sent = ms[:0], users[:0], ids[:0], sent[:0]
		for len(ms) < s.batch {
			m := seq.next()
			if m >= total {
				break
			}
			ms = append(ms, m)
		}
		if len(ms) == 0 || !sch.waitFor(ms[len(ms)-1]) {
			return
		}
		now := time.Now().UnixNano()
		for _, m := range ms {
			k := l.KeyOf(m)
			users = append(users, userID(k))
			ids = append(ids, int64(k)+1)
			sent = append(sent, now)
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var err error
		if s.update {
			err = s.w.update(cctx, ms, ids, sent)
		} else {
			err = s.w.insert(cctx, ms, users, sent)
		}
		cancel()
		for _, m := range ms {
			if err != nil {
				l.MarkFailed()
			} else {
				l.MarkSent(m)
			}
		}
		if err != nil {
			s.errs.add(err)
		}
	}
}

// newDBSenders takes one pool connection per sender.
func newDBSenders(ctx context.Context, pool *pgxpool.Pool, cfg *config, errs *firstErr) ([]sender, error) {
	pad := strings.Repeat("x", max(cfg.PayloadSize-40, 0))
	out := make([]sender, 0, cfg.Senders)
	for range cfg.Senders {
		c, err := pool.Acquire(ctx)
		if err != nil {
			for _, s := range out {
				s.(*dbSender).w.conn.Release()
			}
			return nil, fmt.Errorf("bench: database connection: %w", err)
		}
		out = append(out, &dbSender{
			w:      &dbWriter{conn: c, table: pgx.Identifier{"public", cfg.Table}.Sanitize(), pad: pad},
			update: cfg.Load == loadDBUpdate,
			batch:  cfg.DBBatch,
			errs:   errs,
		})
	}
	return out, nil
}
