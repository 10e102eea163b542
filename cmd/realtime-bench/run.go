package main

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// run executes one benchmark run as configured and returns its result.
func run(ctx context.Context, cfg *config, log *slog.Logger) (*Result, error) {
	res := &Result{Label: cfg.Label, Load: cfg.Load, Layout: describe(cfg), Target: cfg.target(), Nodes: len(cfg.URLs), Started: time.Now().UTC()}
	res.Tool.GoVersion = runtime.Version()
	tok, err := mintTokens(cfg.JWTSecret, cfg.APIKey, cfg.Users, cfg.TokenTTL)
	if err != nil {
		return nil, err
	}

	var pool *pgxpool.Pool
	if cfg.usesDB() {
		pcfg, err := pgxpool.ParseConfig(cfg.DBURL)
		if err != nil {
			return nil, fmt.Errorf("bench: --db-url: %w", err)
		}
		pcfg.MaxConns = int32(cfg.Senders + 1)
		if cfg.SyncCommit {
			// Production PostgreSQL commits synchronously; a test cluster
			// with synchronous_commit = off lets the WAL writer delay
			// (200 ms) dominate the latency the walsender sees.
			pcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
		}
		pool, err = pgxpool.NewWithConfig(ctx, pcfg)
		if err != nil {
			return nil, fmt.Errorf("bench: database: %w", err)
		}
		defer pool.Close()
		if cfg.dbLoad() {
			if err := setupTable(ctx, pool, cfg, "supabase_realtime"); err != nil {
				return nil, err
			}
		}
		if cfg.Private {
			if err := setupPrivate(ctx, pool, cfg); err != nil {
				return nil, err
			}
		}
		pool.QueryRow(ctx, "SELECT current_setting('server_version')").Scan(&res.PostgresVersion)
	}

	svc := newProcWatch(cfg.PID)
	svc.sample("baseline")
	mach0, _ := readMachineCPU()
	self0, _ := readProc(0)

	keys := cfg.keys()
	rec := &recorder{}
	subs := &subscribers{}
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	if cfg.Subscribers > 0 {
		if cfg.Transport == "ws" {
			connectWS(ctx, cfg, tok, rec, keys, subs, &res.Connect, &res.Join, log)
			go heartbeats(hbCtx, cfg.Heartbeat, func() []*wsConn { return subs.ws })
		} else {
			connectSSE(ctx, cfg, tok, rec, keys, subs, &res.Connect, &res.Join, log)
		}
	}
	defer subs.closeAll()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	sleepCtx(ctx, cfg.Settle)
	svc.sample("connected")

	switch {
	case cfg.Load == loadIdle || cfg.Load == loadJoin:
		log.Info("holding connections", "connections", res.Connect.OK, "for", cfg.Duration)
		sleepCtx(ctx, cfg.Duration)
		svc.sample("end")
	default:
		if err := runMessages(ctx, cfg, tok, pool, rec, subs, res, svc, log); err != nil {
			return nil, err
		}
	}
	mach1, _ := readMachineCPU()
	self1, _ := readProc(0)
	wall := time.Since(res.Started).Seconds()
	res.Machine.BusyCores = (mach1.Busy - mach0.Busy) / wall
	res.Tool.CPUSeconds = self1.CPUSeconds - self0.CPUSeconds
	res.Tool.PeakRSSBytes = self1.RSSBytes
	res.Service = svc.summary(res.Connect.OK)
	res.Disconnects = rec.closes.Load()
	res.Unparsed = rec.unparsed.Load()
	res.Strays = subs.strays.Load()
	res.WallSeconds = wall
	return res, nil
}

// runMessages connects the senders, generates the load, drains and
// balances the books.
func runMessages(ctx context.Context, cfg *config, tok *tokens, pool *pgxpool.Pool, rec *recorder, subs *subscribers, res *Result, svc *procWatch, log *slog.Logger) error {
	keys := cfg.keys()
	ledger, err := NewLedger(keys, cfg.totalMessages())
	if err != nil {
		return err
	}
	errs := &firstErr{}
	var senders []sender
	seqs := make([]*ownedSeq, cfg.Senders)
	for j := range seqs {
		seqs[j] = &ownedSeq{period: int64(cfg.Senders), residues: []int64{int64(j)}}
	}
	switch cfg.Load {
	case loadBroadcastWS:
		var sconns []*wsConn
		for j := range cfg.Senders {
			own := residuesFor(j, cfg.Senders, keys)
			seqs[j] = &ownedSeq{period: int64(keys), residues: own}
			chans := make([]*wsChannel, len(own))
			byKey := make(map[int64]*wsChannel, len(own))
			for x, k := range own {
				chans[x] = newWSChannel("realtime:"+cfg.channelName(int(k)), fmt.Sprint(x+1), nil, false)
				byKey[k] = chans[x]
			}
			c, err := dialWS(ctx, cfg, j, tok.apikey, -1-j, chans, rec, &subs.strays)
			if err != nil {
				return fmt.Errorf("bench: sender %d: %w", j, err)
			}
			defer c.close()
			gap := time.Duration(float64(time.Second) / cfg.JoinPace)
			payload := joinPayload(cfg, j%cfg.Users, tok.users[j%cfg.Users])
			for _, ch := range chans {
				if _, _, err := c.join(ctx, ch, payload, cfg.JoinTimeout); err != nil {
					return fmt.Errorf("bench: sender %d join %s: %w", j, ch.topic, err)
				}
				time.Sleep(gap)
			}
			sconns = append(sconns, c)
			senders = append(senders, &wsSender{conn: c, chans: byKey, cfg: cfg, errs: errs})
		}
		hbCtx, stop := context.WithCancel(ctx)
		defer stop()
		go heartbeats(hbCtx, cfg.Heartbeat, func() []*wsConn { return sconns })
	case loadBroadcastREST:
		client := restClient(cfg.Senders)
		for j := range cfg.Senders {
			senders = append(senders, &restSender{client: client, url: cfg.endpoint(j, "/realtime/v1/api/broadcast"), apikey: tok.apikey, cfg: cfg, errs: errs})
		}
	case loadDBBroadcast:
		senders, err = newSendSenders(ctx, pool, cfg, errs)
		if err != nil {
			return err
		}
	case loadDBInsert, loadDBUpdate:
		senders, err = newDBSenders(ctx, pool, cfg, errs)
		if err != nil {
			return err
		}
	}

	svc.sample("load_start")
	mach0, _ := readMachineCPU()
	self0, _ := readProc(0)
	log.Info("generating load", "load", cfg.Load, "rate", cfg.Rate, "duration", cfg.Duration, "senders", cfg.Senders)
	lr := generate(ctx, cfg, senders, seqs, ledger, rec)

	// Drain: wait until every expected copy arrived, or the drain bound.
	var expected int64
	for _, t := range subs.trackers {
		expected += ledger.SentTo(t.key)
	}
	deadline := time.Now().Add(cfg.Drain)
	for rec.deliveries() < expected && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	svc.sample("end")
	mach1, _ := readMachineCPU()
	self1, _ := readProc(0)

	acc := Balance(ledger, subs.trackers)
	send, commit := rec.merged()
	l := &messageStats{}
	res.Messages = l
	l.Planned = cfg.totalMessages()
	l.Sent = ledger.SentTo(-1)
	l.SendFailed = ledger.Failed()
	l.Unsent = l.Planned - l.Sent - l.SendFailed
	l.SendSeconds = lr.End.Sub(lr.Start).Seconds()
	if l.SendSeconds > 0 {
		l.SentPerSec = float64(l.Sent) / l.SendSeconds
	}
	l.SendErrors = errs.list()
	l.Accounting = acc
	if last := rec.lastRecv.Load(); last > 0 {
		l.DeliverySeconds = time.Duration(last - lr.Start.UnixNano()).Seconds()
		if l.DeliverySeconds > 0 {
			l.DeliveredPerSec = float64(acc.Delivered) / l.DeliverySeconds
		}
	}
	if l.Sent > 0 {
		l.FanOut = float64(acc.Expected) / float64(l.Sent)
	}
	l.SendToReceipt = send.Summary()
	if commit.Count() > 0 {
		s := commit.Summary()
		l.CommitToReceipt = &s
	}
	secs := int(l.DeliverySeconds) + 1
	l.Timeline = rec.timelineUpTo(secs)
	if d := mach1.Total - mach0.Total; d > 0 {
		// /proc/stat total is CPU-seconds of all cores; per wall second:
		wall := d / float64(runtime.NumCPU())
		l.MachineCores = (mach1.Busy - mach0.Busy) / wall
		l.ToolCores = (self1.CPUSeconds - self0.CPUSeconds) / wall
		if a, b := svc.get("load_start"), svc.get("end"); a != nil && b != nil {
			l.ServiceCPUCores = (b.CPUSeconds - a.CPUSeconds) / b.at.Sub(a.at).Seconds()
			if cpu := b.CPUSeconds - a.CPUSeconds; cpu > 0 {
				l.PerServiceCPUSec = float64(acc.Delivered) / cpu
			}
		}
		l.OtherCores = max(l.MachineCores-l.ToolCores-l.ServiceCPUCores, 0)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
