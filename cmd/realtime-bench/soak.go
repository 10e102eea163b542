package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// soakConfig sizes the hostile clients of --load soak. Every attack is
// bounded in count (these flags) and in time (the phase).
type soakConfig struct {
	Sockets       int     // bare sockets opened to exhaust descriptors (within the caps)
	SSEFlood      int     // concurrent resume streams of one user
	Presence      int     // sockets tracking a large presence payload in one channel
	PresenceBytes int     // size of each of their payloads
	LikeBombs     int     // sockets with a LIKE-bomb filter
	LikeBytes     int     // length of the LIKE pattern
	BigRowRate    float64 // 1 MiB rows inserted per second
	BigRowBytes   int     // size of those rows
	HugeTopics    int     // sockets joining huge topic names
	HugeTopicSize int     // length of those topic names
	BadTokenRate  float64 // connection attempts with bad tokens per second
	ScrapeRate    float64 // /metrics scrapes per second without a token
	SkipClean     bool    // run the attack phase only
	Only          string  // comma-separated attacks to run (empty: all)
	// Attackers is where the attacks run: "process" (a child process of
	// this tool with GOMAXPROCS=1, see attackproc.go) or "inproc".
	Attackers string
	// Child, when set, makes this process an attacker child: it runs the
	// attacks for Child and prints their counts as JSON (internal).
	Child time.Duration
}

func (s *soakConfig) register(fs *flag.FlagSet) {
	fs.IntVar(&s.Sockets, "attack-sockets", 2000, "soak: bare anon sockets opened and held (descriptor exhaustion attempt; refused ones count)")
	fs.IntVar(&s.SSEFlood, "attack-sse", 200, "soak: concurrent SSE resume streams (last_event_id=0-0) of one user")
	fs.IntVar(&s.Presence, "attack-presence", 40, "soak: sockets tracking a large presence payload in one channel")
	fs.IntVar(&s.PresenceBytes, "attack-presence-bytes", 250<<10, "soak: presence payload size")
	fs.IntVar(&s.LikeBombs, "attack-like", 5, "soak: channels with a LIKE-bomb postgres_changes filter")
	fs.IntVar(&s.LikeBytes, "attack-like-bytes", 100<<10, "soak: LIKE pattern length")
	fs.Float64Var(&s.BigRowRate, "attack-big-rows", 2, "soak: large rows inserted per second (nobody but the attacker may read them)")
	fs.IntVar(&s.BigRowBytes, "attack-big-row-bytes", 1<<20, "soak: large row size")
	fs.IntVar(&s.HugeTopics, "attack-huge-topics", 3, "soak: sockets joining huge topic names, once a second each")
	fs.IntVar(&s.HugeTopicSize, "attack-huge-topic-bytes", 4_500_000, "soak: huge topic name length")
	fs.Float64Var(&s.BadTokenRate, "attack-bad-tokens", 20, "soak: connection attempts with bad tokens per second")
	fs.Float64Var(&s.ScrapeRate, "attack-scrapes", 10, "soak: /metrics scrapes per second without the admin token")
	fs.BoolVar(&s.SkipClean, "skip-clean", false, "soak: skip the clean phase")
	fs.StringVar(&s.Attackers, "attackers", "process", "soak: where the hostile clients run: process (a child process limited to one core, so the measuring clients do not share a scheduler with them) or inproc")
	fs.DurationVar(&s.Child, "attack-child", 0, "internal: run only the attacks for this long and print their counts as JSON (the --attackers process child)")
	fs.StringVar(&s.Only, "attacks", "", "soak: comma-separated attacks to run, to find which one hurts, or none (default every attack: "+strings.Join(attackOrder, ",")+")")
}

// validateSoak checks a soak run: loopback target, a database, sane and
// bounded attack sizes.
func (c *config) validateSoak() error {
	for _, u := range c.URLs {
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("--load soak attacks only a service on loopback (127.0.0.1), not %q", host)
		}
	}
	if c.DBURL == "" {
		return errors.New("--load soak needs --db-url (postgres_changes latency and large rows)")
	}
	if c.Transport != "ws" {
		return errors.New("--load soak measures over --transport ws")
	}
	if c.Subscribers < 2 {
		return errors.New("--load soak needs at least 2 subscribers")
	}
	s := &c.Soak
	switch {
	case s.Sockets < 0 || s.Sockets > 50_000:
		return errors.New("--attack-sockets must be 0..50000")
	case s.SSEFlood < 0 || s.SSEFlood > 2000:
		return errors.New("--attack-sse must be 0..2000")
	case s.Presence < 0 || s.Presence > 1000 || s.PresenceBytes < 0 || s.PresenceBytes > 16<<20:
		return errors.New("--attack-presence must be 0..1000 and --attack-presence-bytes 0..16 MiB")
	case s.LikeBombs < 0 || s.LikeBombs > 100 || s.LikeBytes < 1 || s.LikeBytes > 4<<20:
		return errors.New("--attack-like must be 0..100 and --attack-like-bytes 1..4 MiB")
	case s.BigRowRate < 0 || s.BigRowRate > 100 || s.BigRowBytes < 1 || s.BigRowBytes > 64<<20:
		return errors.New("--attack-big-rows must be 0..100 and --attack-big-row-bytes 1..64 MiB")
	case s.HugeTopics < 0 || s.HugeTopics > 100 || s.HugeTopicSize < 1 || s.HugeTopicSize > 16<<20:
		return errors.New("--attack-huge-topics must be 0..100 and --attack-huge-topic-bytes 1..16 MiB")
	case s.BadTokenRate < 0 || s.BadTokenRate > 1000 || s.ScrapeRate < 0 || s.ScrapeRate > 1000:
		return errors.New("--attack-bad-tokens and --attack-scrapes must be 0..1000 per second")
	case s.Attackers != "process" && s.Attackers != "inproc":
		return errors.New("--attackers must be process or inproc")
	case s.Child < 0 || s.Child > 11*time.Minute:
		return errors.New("--attack-child must be 0..11m")
	}
	for _, name := range s.selected() {
		if !slices.Contains(attackOrder, name) {
			return fmt.Errorf("--attacks: unknown attack %q (known: %s)", name, strings.Join(attackOrder, ","))
		}
	}
	return nil
}

// selected lists the attacks to run: --attacks, or every attack.
func (s *soakConfig) selected() []string {
	if strings.TrimSpace(s.Only) == "" {
		return attackOrder
	}
	var out []string
	if strings.TrimSpace(s.Only) == "none" {
		return out // the attack phase runs the load alone
	}
	for _, name := range strings.Split(s.Only, ",") {
		if name = strings.TrimSpace(name); name != "" {
			out = append(out, name)
		}
	}
	return out
}

// SoakResult is the outcome of --load soak: the same ordinary load run
// clean and under attack.
type SoakResult struct {
	Label   string                  `json:"label,omitempty"`
	Target  string                  `json:"target"`
	Nodes   int                     `json:"nodes"`
	Started time.Time               `json:"started"`
	Clean   *soakPhase              `json:"clean,omitempty"`
	Attack  *soakPhase              `json:"attack"`
	Attacks map[string]*attackStats `json:"attacks"`
	// Ratios of the attack phase's p99 to the clean phase's (0 without a
	// clean phase); the bound is 2.
	BroadcastP99Ratio float64 `json:"broadcast_p99_ratio"`
	ChangesP99Ratio   float64 `json:"postgres_changes_p99_ratio"`
}

// soakPhase is one phase: the broadcast and postgres_changes runs side by
// side, and the service's peak RSS while they ran.
type soakPhase struct {
	Broadcast     *Result `json:"broadcast"`
	Changes       *Result `json:"postgres_changes"`
	PeakRSSBytes  int64   `json:"service_peak_rss_bytes"`
	BroadcastP99  float64 `json:"broadcast_p99_ms"`
	ChangesP99    float64 `json:"postgres_changes_p99_ms"`
	BroadcastLost int64   `json:"broadcast_missing"`
	ChangesLost   int64   `json:"postgres_changes_missing"`
	// ServiceCores and OtherCores are the service's CPU and everything
	// else's (PostgreSQL, other work on the machine) during the load, in
	// cores: on a shared machine the p99 follows OtherCores as much as the
	// attacks.
	ServiceCores float64 `json:"service_cpu_cores"`
	OtherCores   float64 `json:"other_cpu_cores"`
	// AttackerCores is the attacker child's CPU over its run, in cores
	// (--attackers process; part of OtherCores).
	AttackerCores float64 `json:"attacker_cpu_cores,omitempty"`
}

// soakSlack is the run bound of a soak on top of its phases.
func soakBound(c *config) time.Duration {
	phase := c.Duration + c.Drain + c.Settle + runSlack(c)
	return 2*phase + 2*time.Minute
}

// runSoak runs the ordinary load clean, then again with every attack of
// the hostile-clients issue running against the same service.
func runSoak(ctx context.Context, cfg *config, log *slog.Logger) (*SoakResult, error) {
	out := &SoakResult{Label: cfg.Label, Target: cfg.target(), Nodes: len(cfg.URLs), Started: time.Now().UTC()}
	if !cfg.Soak.SkipClean {
		log.Info("soak: clean phase", "subscribers", cfg.Subscribers, "duration", cfg.Duration)
		p, err := soakRun(ctx, cfg, log, nil)
		if err != nil {
			return nil, fmt.Errorf("soak clean phase: %w", err)
		}
		out.Clean = p
	}
	log.Info("soak: attack phase", "subscribers", cfg.Subscribers, "duration", cfg.Duration)
	atk := newAttacks(cfg, log)
	p, err := soakRun(ctx, cfg, log, atk)
	if err != nil {
		return nil, fmt.Errorf("soak attack phase: %w", err)
	}
	out.Attack = p
	out.Attacks = atk.stats
	if out.Clean != nil {
		if out.Clean.BroadcastP99 > 0 {
			out.BroadcastP99Ratio = p.BroadcastP99 / out.Clean.BroadcastP99
		}
		if out.Clean.ChangesP99 > 0 {
			out.ChangesP99Ratio = p.ChangesP99 / out.Clean.ChangesP99
		}
	}
	return out, nil
}

// soakRun runs one phase: half the subscribers on broadcast channels (ten
// per channel), half on postgres_changes of their own rows (RLS, filter on
// the owner), both at --rate, while atk (when given) runs.
func soakRun(ctx context.Context, cfg *config, log *slog.Logger, atk *attacks) (*soakPhase, error) {
	bc := *cfg
	bc.Load = loadBroadcastWS
	bc.Subscribers = cfg.Subscribers / 2
	bc.Users = bc.Subscribers
	bc.Channels = max(bc.Subscribers/10, 1)
	bc.Senders = min(cfg.Senders, bc.Channels)
	bc.Prefix = cfg.Prefix + "-soak-bc"
	bc.Label = "broadcast"
	dc := *cfg
	dc.Load = loadDBInsert
	dc.Subscribers = cfg.Subscribers - bc.Subscribers
	dc.Users = dc.Subscribers
	dc.RLS = true
	dc.Table = "realtime_bench_rls"
	dc.Filter = "user"
	dc.Event = "INSERT"
	dc.Prefix = cfg.Prefix + "-soak-db"
	dc.Label = "postgres_changes"

	// The table must exist before the attackers bind to it or write into
	// it: the postgres_changes run creates it; attacks start once both
	// runs are connected, through started.
	var peak atomic.Int64
	sampleCtx, stopSample := context.WithCancel(ctx)
	defer stopSample()
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if s, err := readProc(cfg.PID); err == nil && cfg.PID > 0 && s.RSSBytes > peak.Load() {
				peak.Store(s.RSSBytes)
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	}()

	var atkWG sync.WaitGroup
	var atkCores float64
	atkCtx, stopAtk := context.WithCancel(ctx)
	defer func() { stopAtk(); atkWG.Wait() }()
	if atk != nil {
		// Attacks start after the subscribers have had time to connect
		// and join, and last for the load.
		atkWG.Add(1)
		go func() {
			defer atkWG.Done()
			sleepCtx(atkCtx, cfg.Settle+connectAllowance(cfg))
			if atkCtx.Err() == nil {
				atkCores = atk.start(atkCtx, cfg.Duration+cfg.Drain)
			}
		}()
	}

	var wg sync.WaitGroup
	var bres, dres *Result
	var berr, derr error
	quiet := log
	if !cfg.Quiet {
		quiet = log.With("phase", map[bool]string{true: "attack", false: "clean"}[atk != nil])
	}
	wg.Add(2)
	go func() { defer wg.Done(); bres, berr = run(ctx, &bc, quiet.With("run", "broadcast")) }()
	go func() { defer wg.Done(); dres, derr = run(ctx, &dc, quiet.With("run", "postgres_changes")) }()
	wg.Wait()
	stopAtk()
	atkWG.Wait()
	if err := errors.Join(berr, derr); err != nil {
		return nil, err
	}
	p := &soakPhase{Broadcast: bres, Changes: dres, PeakRSSBytes: peak.Load(), AttackerCores: atkCores}
	if m := bres.Messages; m != nil {
		p.ServiceCores, p.OtherCores = m.ServiceCPUCores, m.OtherCores
		p.BroadcastP99 = m.SendToReceipt.P99MS
		p.BroadcastLost = m.Accounting.Expected - m.Accounting.Delivered
	}
	if m := dres.Messages; m != nil {
		p.ChangesP99 = m.SendToReceipt.P99MS
		if m.CommitToReceipt != nil {
			p.ChangesP99 = m.CommitToReceipt.P99MS
		}
		p.ChangesLost = m.Accounting.Expected - m.Accounting.Delivered
	}
	return p, nil
}

// connectAllowance estimates how long the subscribers take to connect and
// join before the load starts, so the attacks overlap the load.
func connectAllowance(c *config) time.Duration {
	return time.Duration(float64(c.Subscribers)/200*float64(time.Second)) + 2*time.Second
}

// printSoak writes the soak report.
func printSoak(w io.Writer, r *SoakResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "soak against %s\n", r.Target)
	fmt.Fprintln(tw, "phase\tbroadcast p99 ms\tpostgres_changes p99 ms\tbroadcast missing\tchanges missing\tservice peak RSS MB\tservice cores\tother cores\tattacker process cores")
	row := func(name string, p *soakPhase) {
		if p == nil {
			return
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%d\t%d\t%.1f\t%.2f\t%.2f\t%.2f\n", name, p.BroadcastP99, p.ChangesP99, p.BroadcastLost, p.ChangesLost, float64(p.PeakRSSBytes)/(1<<20), p.ServiceCores, p.OtherCores, p.AttackerCores)
	}
	row("clean", r.Clean)
	row("under attack", r.Attack)
	if r.Clean != nil {
		fmt.Fprintf(tw, "p99 ratio (attack / clean)\t%.2f\t%.2f\t\t\t\n", r.BroadcastP99Ratio, r.ChangesP99Ratio)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "attack\tattempts\trefused\taccepted\terrors\tnote")
	for _, name := range attackOrder {
		if s := r.Attacks[name]; s != nil {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", name, s.Attempts.Load(), s.Refused.Load(), s.Accepted.Load(), s.Errors.Load(), strings.Join(s.notes(), "; "))
		}
	}
	tw.Flush()
}
