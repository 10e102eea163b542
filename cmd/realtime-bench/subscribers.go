package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openrealtime/realtime/realtime/phoenix"
)

// phaseStats describes a connect or join phase.
type phaseStats struct {
	OK       int64           `json:"ok"`
	Failed   int64           `json:"failed"`
	Seconds  float64         `json:"seconds"`
	PerSec   float64         `json:"per_second"`
	Latency  LatencySummary  `json:"latency"`
	Errors   []string        `json:"errors,omitempty"`
	Ready    *LatencySummary `json:"ready_latency,omitempty"` // join → postgres_changes subscribed
	hist     Histogram
	readyH   Histogram
	errs     firstErr
	okN      atomic.Int64
	failN    atomic.Int64
	last     atomic.Int64
	startsAt time.Time
}

func (p *phaseStats) begin() { p.startsAt = time.Now() }

func (p *phaseStats) done(lat time.Duration, err error) {
	if err != nil {
		p.failN.Add(1)
		p.errs.add(err)
		return
	}
	p.okN.Add(1)
	p.hist.Record(lat)
	now := time.Now().UnixNano()
	for {
		l := p.last.Load()
		if now <= l || p.last.CompareAndSwap(l, now) {
			break
		}
	}
}

// finish fills the exported fields: the rate is successes over the time
// from the phase start to the last success.
func (p *phaseStats) finish() {
	p.OK, p.Failed = p.okN.Load(), p.failN.Load()
	if l := p.last.Load(); l > 0 {
		p.Seconds = time.Duration(l - p.startsAt.UnixNano()).Seconds()
		if p.Seconds > 0 {
			p.PerSec = float64(p.OK) / p.Seconds
		}
	}
	p.Latency = p.hist.Summary()
	if p.readyH.Count() > 0 {
		r := p.readyH.Summary()
		p.Ready = &r
	}
	p.Errors = p.errs.list()
}

// subscribers is the set of subscriber connections of a run.
type subscribers struct {
	ws       []*wsConn
	wsChans  [][]*wsChannel
	sse      []*sseSub
	trackers []*Tracker
	strays   atomic.Int64
}

// parallel runs fn(i) for i in 0..n-1, at most conc at a time, stopping
// early when ctx ends.
func parallel(ctx context.Context, n, conc int, fn func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, conc)
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

// joinPayload is the phx_join payload realtime-js 2.x sends, with the
// user's token in access_token.
func joinPayload(cfg *config, user int, token string) []byte {
	pg := "[]"
	if cfg.dbLoad() {
		b := []byte(`[{"event":`)
		b = phoenix.AppendJSONString(b, cfg.Event)
		b = append(b, `,"schema":"public","table":`...)
		b = phoenix.AppendJSONString(b, cfg.Table)
		if cfg.Filter == "user" {
			b = append(b, `,"filter":`...)
			b = phoenix.AppendJSONString(b, "user_id=eq."+userID(user))
		}
		pg = string(append(b, "}]"...))
	}
	p := []byte(`{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":`)
	p = append(p, pg...)
	p = append(p, `,"private":`...)
	p = strconv.AppendBool(p, cfg.Private)
	p = append(p, `},"access_token":`...)
	p = phoenix.AppendJSONString(p, token)
	return append(p, '}')
}

// connectWS opens every subscriber socket (phase connect), then joins every
// channel (phase join), each phase at most cfg.ConnectConc at a time. A
// connection joins its channels one after another, at most cfg.JoinPace
// per second, as an application subscribing to several channels would.
func connectWS(ctx context.Context, cfg *config, tok *tokens, rec *recorder, keys int, s *subscribers, conn, join *phaseStats, log *slog.Logger) {
	n := cfg.Subscribers
	s.ws = make([]*wsConn, n)
	s.wsChans = make([][]*wsChannel, n)
	for i := range n {
		chans := make([]*wsChannel, cfg.ChansPerCon)
		for k := range chans {
			name := cfg.channelName(i)
			var tr *Tracker
			if cfg.Load == loadJoin {
				name = cfg.Prefix + "-j-" + strconv.Itoa(i*cfg.ChansPerCon+k)
			} else {
				tr = NewTracker(cfg.subscriberKey(i), keys)
				s.trackers = append(s.trackers, tr)
			}
			chans[k] = newWSChannel("realtime:"+name, strconv.Itoa(k+1), tr, cfg.dbLoad())
		}
		s.wsChans[i] = chans
	}
	conn.begin()
	parallel(ctx, n, cfg.ConnectConc, func(i int) {
		t := time.Now()
		c, err := dialWS(ctx, cfg, i, tok.apikey, i, s.wsChans[i], rec, &s.strays)
		conn.done(time.Since(t), err)
		s.ws[i] = c
	})
	conn.finish()
	log.Info("connected", "ok", conn.OK, "of", n, "seconds", round2(conn.Seconds), "per_second", round2(conn.PerSec))

	if !cfg.Join {
		return
	}
	gap := time.Duration(float64(time.Second) / cfg.JoinPace)
	join.begin()
	parallel(ctx, n, cfg.ConnectConc, func(i int) {
		c := s.ws[i]
		if c == nil {
			return
		}
		user := i % cfg.Users
		payload := joinPayload(cfg, user, tok.users[user])
		next := time.Now()
		for _, ch := range s.wsChans[i] {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = time.Now().Add(gap)
			reply, ready, err := c.join(ctx, ch, payload, cfg.JoinTimeout)
			join.done(reply, err)
			if err == nil && ch.pg {
				join.readyH.Record(ready)
			}
		}
	})
	join.finish()
	log.Info("joined", "ok", join.OK, "failed", join.Failed, "seconds", round2(join.Seconds), "per_second", round2(join.PerSec))
}

// connectSSE opens every SSE stream and waits for each subscription. The
// connect phase ends at the response headers; "join" is the subscription.
func connectSSE(ctx context.Context, cfg *config, tok *tokens, rec *recorder, keys int, s *subscribers, conn, join *phaseStats, log *slog.Logger) {
	n := cfg.Subscribers
	s.sse = make([]*sseSub, n)
	s.trackers = make([]*Tracker, n)
	conn.begin()
	join.begin()
	parallel(ctx, n, cfg.ConnectConc, func(i int) {
		tr := NewTracker(cfg.subscriberKey(i), keys)
		s.trackers[i] = tr
		t := time.Now()
		sub, err := openSSE(ctx, cfg, tok.apikey, tok.users[i%cfg.Users], i, tr, rec)
		conn.done(time.Since(t), err)
		if err != nil {
			return
		}
		s.sse[i] = sub
		err = sub.wait(cfg.JoinTimeout)
		join.done(time.Since(t), err)
	})
	conn.finish()
	join.finish()
	log.Info("SSE streams subscribed", "open", conn.OK, "subscribed", join.OK, "seconds", round2(join.Seconds), "per_second", round2(join.PerSec))
}

// closeAll ends every connection and waits (bounded) for the readers.
func (s *subscribers) closeAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	parallel(ctx, len(s.ws), 256, func(i int) {
		if c := s.ws[i]; c != nil {
			c.close()
			select {
			case <-c.done:
			case <-ctx.Done():
			}
		}
	})
	parallel(ctx, len(s.sse), 256, func(i int) {
		if c := s.sse[i]; c != nil {
			c.close()
			select {
			case <-c.done:
			case <-ctx.Done():
			}
		}
	})
}

// heartbeats sends a Phoenix heartbeat on every connection each interval
// until ctx ends: one goroutine for all sockets.
func heartbeats(ctx context.Context, every time.Duration, conns func() []*wsConn) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, c := range conns() {
				if c != nil && !c.closing.Load() {
					c.heartbeat()
				}
			}
		}
	}
}

// describe names the subscriber layout for the report.
func describe(cfg *config) string {
	switch {
	case cfg.Load == loadJoin:
		return fmt.Sprintf("%d connections × %d channels", cfg.Subscribers, cfg.ChansPerCon)
	case cfg.dbLoad():
		return fmt.Sprintf("%d %s subscribers of %d users on public.%s (rls=%v, filter=%s, event=%s)", cfg.Subscribers, cfg.Transport, cfg.Users, cfg.Table, cfg.RLS, cfg.Filter, cfg.Event)
	default:
		return fmt.Sprintf("%d %s subscribers on %d channels, %d users", cfg.Subscribers, cfg.Transport, cfg.Channels, cfg.Users)
	}
}

// round2 rounds to two decimals for log lines.
func round2(v float64) float64 { return math.Round(v*100) / 100 }
