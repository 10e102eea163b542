package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openrealtime/realtime/internal/pgcluster"
	"github.com/openrealtime/realtime/internal/realtimeschema"
)

// policiesSQL are SELECT policies on realtime.messages that depend on each
// part of a probe's context: role, claims, sub, topic, headers; one raises
// for topics starting with "boom", and one leaves a transaction-local
// setting behind that would deny a later request that saw it.
const policiesSQL = `
CREATE SCHEMA t;
CREATE TABLE t.members (sub text, topic text);
GRANT USAGE ON SCHEMA t TO anon, authenticated;
GRANT SELECT ON t.members TO anon, authenticated;
CREATE FUNCTION t.check(topic text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF topic LIKE 'boom%' THEN RAISE EXCEPTION 'policy raised for %', topic; END IF;
  RETURN true;
END $$;
CREATE FUNCTION t.mark() RETURNS boolean LANGUAGE sql AS $$ SELECT set_config('t.mark', 'set', true) = 'set' $$;
GRANT EXECUTE ON FUNCTION t.check(text), t.mark() TO anon, authenticated;
CREATE POLICY members_read ON realtime.messages FOR SELECT TO authenticated USING (
  t.check(realtime.topic())
  AND coalesce(current_setting('t.mark', true), '') <> 'set'
  AND EXISTS (SELECT 1 FROM t.members m WHERE m.sub = current_setting('request.jwt.claim.sub', true) AND m.topic = realtime.topic())
  AND (extension = 'broadcast' OR (current_setting('request.jwt.claims', true)::jsonb ->> 'presence') = 'yes'));
CREATE POLICY header_read ON realtime.messages FOR SELECT TO anon USING (
  t.mark() AND t.check(realtime.topic())
  AND (current_setting('request.headers', true)::jsonb ->> 'x-pass') = realtime.topic()
  AND extension = 'broadcast');
`

// newProbeDB starts a cluster with the realtime schema, the policies and
// membership rows for subs u0..u9 on topics room-<i> with i%3 == sub%3.
func newProbeDB(t testing.TB) *pgxpool.Pool {
	_, pool := newProbeCluster(t)
	return pool
}

// newProbeCluster is newProbeDB, with the cluster.
func newProbeCluster(t testing.TB) (*pgcluster.Cluster, *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	cfg, err := pgxpool.ParseConfig(c.URL(""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `CREATE ROLE anon NOLOGIN; CREATE ROLE authenticated NOLOGIN`); err != nil {
		t.Fatal(err)
	}
	if _, err := realtimeschema.Migrate(ctx, pool, realtimeschema.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, policiesSQL); err != nil {
		t.Fatal(err)
	}
	for s := 0; s < 10; s++ {
		for i := 0; i < 12; i++ {
			if i%3 == s%3 {
				if _, err := pool.Exec(ctx, `INSERT INTO t.members VALUES ($1, $2)`, fmt.Sprintf("u%d", s), fmt.Sprintf("room-%d", i)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return c, pool
}

// probeRequests varies role, sub, claims, topic, headers and presence; some
// requests name a role that does not exist or a topic whose policy raises.
func probeRequests(n int) []*Request {
	var out []*Request
	for k := 0; k < n; k++ {
		sub := fmt.Sprintf("u%d", k%10)
		topic := fmt.Sprintf("room-%d", k%12)
		presence := "no"
		if k%4 == 0 {
			presence = "yes"
		}
		r := &Request{Role: "authenticated", Sub: sub, Topic: topic, Presence: k%2 == 0,
			Claims: json.RawMessage(fmt.Sprintf(`{"sub":%q,"role":"authenticated","presence":%q}`, sub, presence))}
		switch k % 7 {
		case 1:
			r.Role, r.Sub, r.Claims = "anon", "", json.RawMessage(`{"role":"anon"}`)
			r.Headers = map[string]string{"x-pass": topic}
			if k%3 == 0 {
				r.Headers["x-pass"] = "other"
			}
		case 3:
			r.Topic = "boom-" + topic
		case 5:
			r.Role = "ghost"
		}
		out = append(out, r)
	}
	return out
}

// answer is a probe's outcome in comparable form.
type answer struct {
	broadcast, presence bool
	class               string
}

func answerOf(b, p bool, err error) answer {
	a := answer{broadcast: b, presence: p}
	switch {
	case err == nil:
	case errors.Is(err, ErrPolicy):
		a.class = "policy"
	case errors.Is(err, ErrMissingPartition):
		a.class = "partition"
	case errors.Is(err, ErrUnavailable):
		a.class = "unavailable"
	default:
		a.class = "other: " + err.Error()
	}
	return a
}

// Batched read probes give every request exactly the answer it gets alone:
// its own role, sub, claims, topic and headers, nothing left behind by the
// requests before it in the batch, and a raising policy or an unknown role
// fails only that request; nothing persists (docs/protocol.md §9.2).
func TestBatchedReadsMatchOneByOne(t *testing.T) {
	pool := newProbeDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reqs := probeRequests(300)

	single := NewProber(pool)
	want := make([]answer, len(reqs))
	kinds := map[answer]int{}
	for i, r := range reqs {
		want[i] = answerOf(single.Read(ctx, r))
		kinds[want[i]]++
	}
	// The policies tell the requests apart: grants with and without
	// presence, denials and policy errors all occur.
	for _, a := range []answer{{true, true, ""}, {true, false, ""}, {false, false, ""}, {false, false, "policy"}} {
		if kinds[a] == 0 {
			t.Fatalf("one-by-one answers %v lack %+v", kinds, a)
		}
	}

	// One batch holding every request, in order.
	b := NewBatchingProber(pool, 2)
	var jobs []*readJob
	for i := 0; i < len(reqs); i += maxReadBatch {
		jobs = jobs[:0]
		for _, r := range reqs[i:min(i+maxReadBatch, len(reqs))] {
			j := &readJob{ctx: ctx, r: r, bid: uuid.NewString(), done: make(chan readResult, 1)}
			if r.Presence {
				j.pid = uuid.NewString()
			}
			jobs = append(jobs, j)
		}
		res, err := b.pipelineRead(ctx, jobs)
		if err != nil {
			t.Fatalf("batch at %d: %v", i, err)
		}
		for k, got := range res {
			if a := answerOf(got.broadcast, got.presence, got.err); a != want[i+k] {
				t.Fatalf("request %d %s: batched %+v (%v), alone %+v", i+k, describe(reqs[i+k]), a, got.err, want[i+k])
			}
		}
	}

	// Concurrent Reads through the batcher.
	got := make([]answer, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = answerOf(b.Read(ctx, r))
		}()
	}
	wg.Wait()
	for i := range reqs {
		if got[i] != want[i] {
			t.Fatalf("request %d %s: concurrent %+v, alone %+v", i, describe(reqs[i]), got[i], want[i])
		}
	}

	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM realtime.messages`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("realtime.messages holds %d rows (err %v), want 0", n, err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d connections idle in a transaction (err %v)", n, err)
	}
}

// Without today's partition every batched read probe fails with
// ErrMissingPartition, as it does alone.
func TestBatchedReadsMissingPartition(t *testing.T) {
	pool := newProbeDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	today := "realtime.messages_" + time.Now().UTC().Format("2006_01_02")
	if _, err := pool.Exec(ctx, "DROP TABLE "+today); err != nil {
		t.Fatal(err)
	}
	b := NewBatchingProber(pool, 2)
	reqs := probeRequests(40)
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = b.Read(ctx, r)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrMissingPartition) {
			t.Fatalf("request %d: err %v, want ErrMissingPartition", i, err)
		}
	}
}

// An idle batching Prober holds no goroutine: workers exit once the queue
// is empty.
func TestBatcherWorkersExit(t *testing.T) {
	pool := newProbeDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := NewBatchingProber(pool, 3)
	var wg sync.WaitGroup
	for _, r := range probeRequests(50) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.Read(ctx, r)
		}()
	}
	wg.Wait()
	for len(b.reads.slots) > 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("%d workers still running", len(b.reads.slots))
		case <-time.After(10 * time.Millisecond):
		}
	}
	if n := len(b.reads.jobs); n != 0 {
		t.Fatalf("%d probes left queued", n)
	}
}

// describe renders r for a failure message.
func describe(r *Request) string {
	return fmt.Sprintf("role=%s sub=%s claims=%s topic=%s headers=%v presence=%v", r.Role, r.Sub, r.Claims, r.Topic, r.Headers, r.Presence)
}
