package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

// imageSetupSQL adds what the policy sets below read: auth.uid() and
// auth.jwt() as Supabase defines them, a membership table keyed by uuid, a
// group role authenticated belongs to, a role bypassing RLS and a role
// without privileges on realtime.messages.
const imageSetupSQL = `
CREATE SCHEMA auth;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS
  $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS
  $$ SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb $$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated;
GRANT EXECUTE ON FUNCTION auth.uid(), auth.jwt() TO anon, authenticated;
CREATE TABLE t.rooms (user_id uuid, room text, admin boolean);
GRANT SELECT ON t.rooms TO authenticated;
CREATE ROLE editors NOLOGIN;
GRANT editors TO authenticated;
CREATE ROLE service_role NOLOGIN BYPASSRLS;
GRANT USAGE ON SCHEMA realtime TO service_role;
GRANT SELECT, INSERT ON realtime.messages TO service_role;
CREATE ROLE outsider NOLOGIN;
`

// imagePolicySets are policy sets on realtime.messages (after dropping the
// base ones); each is judged by image and insert probes alike.
var imagePolicySets = []struct {
	name string
	sql  string
	// insertOnly: every authenticated probe must take the insert path.
	insertOnly bool
}{
	{name: "no policy"},
	{name: "membership", sql: `CREATE POLICY m ON realtime.messages FOR SELECT TO authenticated USING (
  EXISTS (SELECT 1 FROM t.rooms r WHERE r.user_id = auth.uid() AND r.room = realtime.topic()))`},
	{name: "membership and restrictive", sql: `CREATE POLICY m ON realtime.messages FOR SELECT TO authenticated USING (
  EXISTS (SELECT 1 FROM t.rooms r WHERE r.user_id = (select auth.uid()) AND r.room = realtime.topic()));
CREATE POLICY r ON realtime.messages AS RESTRICTIVE FOR SELECT TO authenticated USING (realtime.topic() NOT LIKE 'secret%');
CREATE POLICY r2 ON realtime.messages AS RESTRICTIVE FOR SELECT USING (extension = 'broadcast' OR auth.jwt() ->> 'presence' = 'yes')`},
	{name: "topic patterns", sql: `CREATE POLICY p ON realtime.messages FOR SELECT TO authenticated USING (realtime.topic() LIKE 'room-1%' AND extension IN ('broadcast', 'presence'));
CREATE POLICY q ON realtime.messages FOR SELECT TO authenticated USING (realtime.topic() ~ '^secret-[0-9]$' AND extension = 'presence')`},
	{name: "other roles only", sql: `CREATE POLICY o ON realtime.messages FOR SELECT TO outsider USING (true);
CREATE POLICY w ON realtime.messages FOR INSERT TO authenticated WITH CHECK (true)`},
	{name: "group role and public", sql: `CREATE POLICY g ON realtime.messages FOR ALL TO editors USING (
  EXISTS (SELECT 1 FROM t.rooms r WHERE r.user_id = auth.uid() AND r.room = realtime.topic() AND r.admin));
CREATE POLICY pub ON realtime.messages FOR SELECT USING (
  (current_setting('request.headers', true)::jsonb ->> 'x-pass') = realtime.topic() AND auth.jwt() ->> 'role' = 'anon')`},
	{name: "stored columns", sql: `CREATE POLICY c ON realtime.messages FOR SELECT TO authenticated USING (
  private IS NOT TRUE AND event IS NULL AND payload IS NULL AND id IS NOT NULL
  AND inserted_at > (now() AT TIME ZONE 'UTC') - interval '1 hour' AND updated_at = inserted_at
  AND messages.topic = realtime.topic())`},
	{name: "raising", sql: `CREATE POLICY b ON realtime.messages FOR SELECT TO authenticated USING (
  t.check(realtime.topic()) AND extension = 'broadcast')`},
	{name: "reads realtime.messages", insertOnly: true, sql: `CREATE POLICY s ON realtime.messages FOR SELECT TO authenticated USING (
  NOT EXISTS (SELECT 1 FROM realtime.messages o WHERE o.topic = 'never' || realtime.topic()))`},
	{name: "system column", insertOnly: true, sql: `CREATE POLICY x ON realtime.messages FOR SELECT TO authenticated USING (
  tableoid <> 0::oid AND extension = 'broadcast')`},
	{name: "RLS off", sql: `ALTER TABLE realtime.messages DISABLE ROW LEVEL SECURITY`},
}

// imageRequests are probes of every role (one without privileges, one
// bypassing RLS, one that does not exist) on member, non-member, secret
// and raising topics, with and without presence.
func imageRequests(users []uuid.UUID) []*Request {
	var out []*Request
	topics := []string{"room-1", "room-2", "room-10", "secret-1", "boom-1"}
	for k := 0; k < 60; k++ {
		u := users[k%len(users)]
		topic := topics[k%len(topics)]
		presence := "no"
		if k%3 == 0 {
			presence = "yes"
		}
		r := &Request{Role: "authenticated", Sub: u.String(), Topic: topic, Presence: k%2 == 0,
			Claims: json.RawMessage(fmt.Sprintf(`{"sub":%q,"role":"authenticated","presence":%q}`, u, presence))}
		switch k % 9 {
		case 1:
			r.Role, r.Sub, r.Claims = "anon", "", json.RawMessage(`{"role":"anon"}`)
			r.Headers = map[string]string{"x-pass": topic}
		case 4:
			r.Role = "service_role"
		case 5:
			r.Role = "outsider"
		case 7:
			r.Role = "ghost"
		}
		out = append(out, r)
	}
	return out
}

// Image read probes give every request the answer the insert probe gives
// it alone, for policies of every shape: membership sub-queries,
// restrictive policies, realtime.topic() patterns, policies for other
// roles, group roles and PUBLIC, policies reading the stored columns, a
// raising policy, no policy, RLS off, roles without privileges, bypassing
// RLS or unknown. A policy that reads realtime.messages itself takes the
// insert path. Policy changes between runs are seen at once
// (docs/protocol.md §9.2).
func TestImageReadsMatchInsertProbe(t *testing.T) {
	pool := newProbeDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	exec(t, pool, imageSetupSQL)
	users := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	exec(t, pool, fmt.Sprintf(`INSERT INTO t.rooms VALUES ('%s', 'room-1', true), ('%s', 'room-10', false),
  ('%s', 'secret-1', true), ('%s', 'room-2', true), ('%s', 'boom-1', true)`, users[0], users[0], users[0], users[1], users[1]))
	reqs := imageRequests(users)
	single := NewProber(pool)
	b := NewBatchingProber(pool, 2)
	changes := 0
	for k, set := range imagePolicySets {
		exec(t, pool, `DROP POLICY IF EXISTS members_read ON realtime.messages; DROP POLICY IF EXISTS header_read ON realtime.messages`)
		for _, n := range []string{"m", "r", "r2", "p", "q", "o", "w", "g", "pub", "c", "b", "s", "x"} {
			exec(t, pool, "DROP POLICY IF EXISTS "+n+" ON realtime.messages")
		}
		exec(t, pool, `ALTER TABLE realtime.messages ENABLE ROW LEVEL SECURITY`)
		if set.sql != "" {
			exec(t, pool, set.sql)
		}
		want := make([]answer, len(reqs))
		kinds := map[answer]bool{}
		for i, r := range reqs {
			want[i] = answerOf(single.Read(ctx, r))
			kinds[want[i]] = true
		}
		before := changes
		res, rest := imageBatch(t, ctx, b, reqs, &changes)
		if k > 0 && changes != before+1 {
			t.Fatalf("%s: the policy change was not noticed", set.name)
		}
		inserted := map[int]bool{}
		for _, i := range rest {
			inserted[i] = true
		}
		for i, r := range reqs {
			if r.Role == "authenticated" && inserted[i] != set.insertOnly {
				t.Fatalf("%s: request %d %s: insert path %v, want %v", set.name, i, describe(r), inserted[i], set.insertOnly)
			}
			if inserted[i] {
				continue
			}
			if a := answerOf(res[i].broadcast, res[i].presence, res[i].err); a != want[i] {
				t.Fatalf("%s: request %d %s: image %+v (%v), insert %+v", set.name, i, describe(r), a, res[i].err, want[i])
			}
		}
		// Through the batcher, every request (the insert path included).
		for i, r := range reqs {
			if a := answerOf(b.Read(ctx, r)); a != want[i] {
				t.Fatalf("%s: request %d %s: batcher %+v, insert %+v", set.name, i, describe(r), a, want[i])
			}
		}
		t.Logf("%s: answers %v", set.name, kinds)
	}
	// A trigger on the table (it could change or refuse the probe rows):
	// no probe is imaged, and the batcher still answers as the insert probe.
	exec(t, pool, `CREATE FUNCTION t.trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.private := true; RETURN NEW; END $$;
CREATE TRIGGER trg BEFORE INSERT ON realtime.messages FOR EACH ROW EXECUTE FUNCTION t.trg();
CREATE POLICY c ON realtime.messages FOR SELECT TO authenticated USING (private IS TRUE);
ALTER TABLE realtime.messages ENABLE ROW LEVEL SECURITY`)
	jobs := make([]*readJob, len(reqs))
	for i, r := range reqs {
		jobs[i] = &readJob{ctx: ctx, r: r, bid: uuid.NewString(), done: make(chan readResult, 1)}
	}
	if _, _, err := b.imageRead(ctx, jobs); !errors.Is(err, errNoImage) {
		if _, _, err = b.imageRead(ctx, jobs); !errors.Is(err, errNoImage) {
			t.Fatalf("with a trigger on realtime.messages: image batch err %v, want errNoImage", err)
		}
	}
	granted := 0
	for i, r := range reqs {
		want := answerOf(single.Read(ctx, r))
		if a := answerOf(b.Read(ctx, r)); a != want {
			t.Fatalf("trigger: request %d %s: batcher %+v, insert %+v", i, describe(r), a, want)
		}
		if want.broadcast && r.Role == "authenticated" {
			granted++
		}
	}
	if granted == 0 {
		t.Fatal("trigger: the policy on the trigger-set column granted nothing")
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM realtime.messages`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("realtime.messages holds %d rows (err %v), want 0", n, err)
	}
}

// imageBatch runs reqs as one image batch, again when it saw the catalog
// change (counted in changes).
func imageBatch(t *testing.T, ctx context.Context, b *Prober, reqs []*Request, changes *int) ([]readResult, []int) {
	t.Helper()
	var jobs []*readJob
	for _, r := range reqs {
		j := &readJob{ctx: ctx, r: r, bid: uuid.NewString(), done: make(chan readResult, 1)}
		if r.Presence {
			j.pid = uuid.NewString()
		}
		jobs = append(jobs, j)
	}
	res, rest, err := b.imageRead(ctx, jobs)
	if errors.Is(err, errCatalogChanged) {
		*changes++
		res, rest, err = b.imageRead(ctx, jobs)
	}
	if err != nil {
		t.Fatalf("image batch: %v", err)
	}
	return res, rest
}

// exec runs sql on pool or fails the test.
func exec(t testing.TB, pool *pgxpool.Pool, sql string) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
