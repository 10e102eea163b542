package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// maxMemberships bounds the membership rows setupPrivate writes.
const maxMemberships = 2_000_000

// setupPrivate gives the private bench channels a membership-table policy
// as Supabase's docs write them: public.realtime_bench_members lists
// (user, channel) pairs, every channel a user of the run joins, and
// SELECT/INSERT policies on realtime.messages look the caller up there.
func setupPrivate(ctx context.Context, pool *pgxpool.Pool, cfg *config) error {
	users := cfg.Users
	if users <= 0 {
		users = cfg.Subscribers
	}
	// The join load gives connection i its own channels prefix-j-<i*cpc+k>;
	// the other loads use prefix-<n> for n < channels, any user on any.
	var pairs [][2]string
	if cfg.Load == loadJoin {
		for i := range cfg.Subscribers {
			for k := range cfg.ChansPerCon {
				pairs = append(pairs, [2]string{cfg.Prefix + "-j-" + strconv.Itoa(i*cfg.ChansPerCon+k), userID(i % users)})
			}
		}
	} else {
		if users*cfg.Channels > maxMemberships {
			return fmt.Errorf("bench: %d users × %d channels is over %d memberships", users, cfg.Channels, maxMemberships)
		}
		for u := range users {
			for ch := range cfg.Channels {
				pairs = append(pairs, [2]string{cfg.Prefix + "-" + strconv.Itoa(ch), userID(u)})
			}
		}
	}
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS public.realtime_bench_members (room text NOT NULL, user_id uuid NOT NULL, PRIMARY KEY (user_id, room))`,
		`TRUNCATE public.realtime_bench_members`,
		`GRANT SELECT ON public.realtime_bench_members TO authenticated`,
		`DROP POLICY IF EXISTS realtime_bench_read ON realtime.messages`,
		`CREATE POLICY realtime_bench_read ON realtime.messages FOR SELECT TO authenticated USING (EXISTS (SELECT 1 FROM public.realtime_bench_members m WHERE m.user_id = auth.uid() AND m.room = realtime.topic()))`,
		`DROP POLICY IF EXISTS realtime_bench_write ON realtime.messages`,
		`CREATE POLICY realtime_bench_write ON realtime.messages FOR INSERT TO authenticated WITH CHECK (EXISTS (SELECT 1 FROM public.realtime_bench_members m WHERE m.user_id = auth.uid() AND m.room = realtime.topic()))`,
	}
	for _, s := range stmts {
		if _, err := pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("bench: private setup (is the service's realtime schema there?): %s: %w", s, err)
		}
	}
	rows := make([][]any, len(pairs))
	for i, p := range pairs {
		rows[i] = []any{p[0], p[1]}
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"public", "realtime_bench_members"}, []string{"room", "user_id"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("bench: memberships: %w", err)
	}
	_, err := pool.Exec(ctx, "ANALYZE public.realtime_bench_members")
	return err
}

// sendSender calls realtime.send on its own database connection, one
// message per statement: database broadcasts to the bench channels.
type sendSender struct {
	conn    *pgxpool.Conn
	cfg     *config
	errs    *firstErr
	payload []byte
}

func newSendSenders(ctx context.Context, pool *pgxpool.Pool, cfg *config, errs *firstErr) ([]sender, error) {
	out := make([]sender, 0, cfg.Senders)
	for range cfg.Senders {
		c, err := pool.Acquire(ctx)
		if err != nil {
			for _, s := range out {
				s.(*sendSender).conn.Release()
			}
			return nil, fmt.Errorf("bench: database connection: %w", err)
		}
		out = append(out, &sendSender{conn: c, cfg: cfg, errs: errs})
	}
	return out, nil
}

func (s *sendSender) run(ctx context.Context, seq *ownedSeq, sch schedule, total int64, l *Ledger) {
	defer s.conn.Release()
	for ctx.Err() == nil {
		m := seq.next()
		if m >= total || !sch.waitFor(m) {
			return
		}
		s.payload = appendMarker(s.payload[:0], m, time.Now(), s.cfg.PayloadSize)
		_, err := s.conn.Exec(ctx, "SELECT realtime.send($1::jsonb, 'bench', $2, $3)", string(s.payload), s.cfg.channelName(l.KeyOf(m)), s.cfg.Private)
		if err != nil {
			l.MarkFailed()
			s.errs.add(err)
			continue
		}
		l.MarkSent(m)
	}
}
