package rls

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/decoder"
	"github.com/openrealtime/realtime/internal/pgcluster"
)

const (
	alice   = "11111111-1111-1111-1111-111111111111"
	bob     = "22222222-2222-2222-2222-222222222222"
	mallory = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb"
)

// rlsSchema sets up Supabase-style roles, auth.uid() and the tables the tests use.
const rlsSchema = `
CREATE ROLE anon NOLOGIN;
CREATE ROLE authenticated NOLOGIN;
CREATE ROLE service_role NOLOGIN BYPASSRLS;
CREATE ROLE "we""ird role" NOLOGIN;
GRANT anon, authenticated, service_role, "we""ird role" TO postgres;
CREATE SCHEMA auth;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role, "we""ird role";
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;

CREATE TABLE public.todos (id bigint PRIMARY KEY, user_id uuid, title text, secret text);
ALTER TABLE public.todos ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON public.todos FOR SELECT USING (user_id = auth.uid());
GRANT SELECT (id, user_id, title) ON public.todos TO authenticated, anon, "we""ird role";
GRANT SELECT ON public.todos TO service_role;
INSERT INTO public.todos VALUES
  (1, '` + alice + `', 'a1', 's'), (2, '` + bob + `', 'b1', 's'), (3, '` + alice + `', 'a2', 's'),
  (4, '` + bob + `', 'b2', 's'), (5, NULL, 'nobody', 's');

CREATE TABLE public.members (org_id int, user_name text, note text, PRIMARY KEY (user_name, org_id));
ALTER TABLE public.members ENABLE ROW LEVEL SECURITY;
CREATE POLICY by_name ON public.members FOR SELECT
  USING (user_name = current_setting('request.jwt.claims', true)::jsonb->>'name');
GRANT SELECT ON public.members TO authenticated;
INSERT INTO public.members VALUES (1, 'alice', 'x'), (2, 'alice', 'y'), (1, 'bob', 'z');

CREATE FUNCTION public.guard(owner uuid) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF auth.uid() = '` + mallory + `'::uuid THEN RAISE EXCEPTION 'guard refuses %', auth.uid(); END IF;
  RETURN owner = auth.uid();
END $$;
CREATE TABLE public.guarded (id int PRIMARY KEY, user_id uuid);
ALTER TABLE public.guarded ENABLE ROW LEVEL SECURITY;
CREATE POLICY guarded_owner ON public.guarded FOR SELECT USING (public.guard(user_id));
GRANT SELECT ON public.guarded TO authenticated;
INSERT INTO public.guarded VALUES (1, '` + alice + `'), (2, '` + bob + `');

CREATE SCHEMA "My Schema";
GRANT USAGE ON SCHEMA "My Schema" TO authenticated;
CREATE TABLE "My Schema"."odd ""name""" ("the key" text PRIMARY KEY, owner uuid);
ALTER TABLE "My Schema"."odd ""name""" ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON "My Schema"."odd ""name""" FOR SELECT USING (owner = auth.uid());
GRANT SELECT ON "My Schema"."odd ""name""" TO authenticated;

CREATE DOMAIN public.posint AS int CHECK (VALUE > 0);
CREATE TYPE public.mood AS ENUM ('happy', 'sad');
CREATE TABLE public.typed (gone int, id public.posint PRIMARY KEY, tags text[], nums int4[],
  v varchar(10), m public.mood, at timestamptz);
ALTER TABLE public.typed DROP COLUMN gone;
ALTER TABLE public.typed ENABLE ROW LEVEL SECURITY;
CREATE POLICY happy ON public.typed FOR SELECT USING (m = 'happy');
GRANT SELECT ON public.typed TO authenticated;
INSERT INTO public.typed (id, m) VALUES (1, 'happy'), (2, 'sad');

CREATE TABLE public.moods (m public.mood PRIMARY KEY, user_id uuid);
ALTER TABLE public.moods ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON public.moods FOR SELECT USING (user_id = auth.uid());
GRANT SELECT ON public.moods TO authenticated;
INSERT INTO public.moods VALUES ('happy', '` + alice + `'), ('sad', '` + bob + `');

CREATE TABLE public.nopk (a int);

CREATE TABLE public.later (id int PRIMARY KEY, user_id uuid);
CREATE POLICY owner_only ON public.later FOR SELECT USING (user_id = auth.uid());
GRANT SELECT ON public.later TO authenticated;
INSERT INTO public.later VALUES (1, '` + alice + `'), (2, '` + bob + `');

CREATE TABLE public.big (id int PRIMARY KEY, user_id uuid);
ALTER TABLE public.big ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON public.big FOR SELECT USING (user_id = auth.uid());
GRANT SELECT ON public.big TO authenticated;
INSERT INTO public.big SELECT g, CASE WHEN g % 2 = 0 THEN '` + alice + `'::uuid ELSE '` + bob + `'::uuid END
  FROM generate_series(1, 2500) g;

CREATE FUNCTION public.slow(owner uuid) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF auth.uid() = '` + mallory + `'::uuid THEN PERFORM pg_sleep(5); END IF;
  RETURN owner = auth.uid();
END $$;
CREATE TABLE public.sleepy (id int PRIMARY KEY, user_id uuid);
ALTER TABLE public.sleepy ENABLE ROW LEVEL SECURITY;
CREATE POLICY slow_owner ON public.sleepy FOR SELECT USING (public.slow(user_id));
GRANT SELECT ON public.sleepy TO authenticated;
INSERT INTO public.sleepy VALUES (1, '` + alice + `');
`

// startRLSDB starts a private cluster, loads setup and returns a simple-protocol
// pool of at most maxConns connections; everything is torn down with tb.
func startRLSDB(tb testing.TB, setup string, maxConns int32) (*pgcluster.Cluster, *pgxpool.Pool) {
	tb.Helper()
	ctx := context.Background()
	cl, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cl.Stop() })
	pool := newPool(tb, cl, maxConns)
	if _, err := pool.Exec(ctx, setup); err != nil {
		tb.Fatalf("setup: %v", err)
	}
	return cl, pool
}

func newPool(tb testing.TB, cl *pgcluster.Cluster, maxConns int32) *pgxpool.Pool {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(cl.URL("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// mkClaims builds an identity the way the transports do from verified
// claims: canonical JSON with sorted keys.
func mkClaims(tb testing.TB, role, sub string, extra map[string]any) *channels.Identity {
	tb.Helper()
	m := map[string]any{"role": role, "exp": 4102444800}
	if sub != "" {
		m["sub"] = sub
	}
	for k, v := range extra {
		m[k] = v
	}
	raw, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return &channels.Identity{Role: role, Sub: sub, Claims: raw, Key: string(raw)}
}

func keysOf(ids ...string) [][]string {
	keys := make([][]string, len(ids))
	for i, id := range ids {
		keys[i] = []string{id}
	}
	return keys
}

// fakeClock is a settable clock for cache expiry.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

// sessionState reports what a pooled connection's session looks like.
func sessionState(t *testing.T, conn *pgxpool.Conn) string {
	t.Helper()
	var user, claims, sub string
	err := conn.QueryRow(context.Background(), `SELECT current_user::text,
		coalesce(current_setting('request.jwt.claims', true), ''),
		coalesce(current_setting('request.jwt.claim.sub', true), '')`).Scan(&user, &claims, &sub)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("user=%s claims=%q sub=%q tx=%c", user, claims, sub, conn.Conn().PgConn().TxStatus())
}

const cleanSession = `user=postgres claims="" sub="" tx=I`

func TestChecker(t *testing.T) {
	cl, pool := startRLSDB(t, rlsSchema, 4)
	ctx := context.Background()
	c := NewChecker(CheckerConfig{Pool: pool})

	t.Run("VisibleOwnRows", func(t *testing.T) {
		keys := keysOf("1", "2", "3", "4", "5", "999")
		cases := []struct {
			name   string
			claims *channels.Identity
			want   []bool
		}{
			{"alice", mkClaims(t, "authenticated", alice, nil), []bool{true, false, true, false, false, false}},
			{"bob", mkClaims(t, "authenticated", bob, nil), []bool{false, true, false, true, false, false}},
			{"anon", mkClaims(t, "anon", "", nil), []bool{false, false, false, false, false, false}},
			// service_role bypasses RLS: even the key-only image of 999 (no stored row) is visible.
			{"service_role", mkClaims(t, "service_role", "", nil), []bool{true, true, true, true, true, true}},
			{"quoted role name", mkClaims(t, `we"ird role`, alice, nil), []bool{true, false, true, false, false, false}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := visibleByKey(ctx, c, tc.claims, "public", "todos", keys)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, tc.want) {
					t.Fatalf("Visible = %v, want %v", got, tc.want)
				}
			})
		}
	})

	t.Run("VisibleEmptyKeys", func(t *testing.T) {
		got, err := visibleByKey(ctx, c, mkClaims(t, "authenticated", alice, nil), "public", "todos", nil)
		if err != nil || len(got) != 0 {
			t.Fatalf("Visible(nil keys) = %v, %v", got, err)
		}
	})

	t.Run("VisibleBadKeys", func(t *testing.T) {
		claims := mkClaims(t, "authenticated", alice, nil)
		for name, keys := range map[string][][]string{
			"too many values": {{"1", "2"}},
			"no values":       {{}},
			"NUL byte":        {{"1\x00"}},
			"invalid UTF-8":   {{"\xff"}},
		} {
			if _, err := visibleByKey(ctx, c, claims, "public", "todos", keys); err == nil {
				t.Errorf("%s: Visible succeeded", name)
			}
		}
		if _, err := visibleByKey(ctx, c, nil, "public", "todos", keysOf("1")); err == nil {
			t.Error("nil claims: Visible succeeded")
		}
	})

	t.Run("SelectableColumns", func(t *testing.T) {
		cases := []struct {
			role string
			want []string
		}{
			{"authenticated", []string{"id", "title", "user_id"}},
			{"anon", []string{"id", "title", "user_id"}},
			{"service_role", []string{"id", "secret", "title", "user_id"}},
			{"postgres", []string{"id", "secret", "title", "user_id"}},
		}
		for _, tc := range cases {
			cols, err := c.SelectableColumns(ctx, tc.role, "public", "todos")
			if err != nil {
				t.Fatalf("%s: %v", tc.role, err)
			}
			got := make([]string, 0, len(cols))
			for name, ok := range cols {
				if !ok {
					t.Errorf("%s: column %s mapped to false", tc.role, name)
				}
				got = append(got, name)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: SelectableColumns = %v, want %v", tc.role, got, tc.want)
			}
		}
		if _, err := c.SelectableColumns(ctx, "no_such_role", "public", "todos"); !errors.Is(err, channels.ErrNoRole) {
			t.Errorf("missing role: err = %v, want ErrNoRole", err)
		}
		if _, err := c.SelectableColumns(ctx, "authenticated", "public", "no_such_table"); !errors.Is(err, channels.ErrNoTable) {
			t.Errorf("missing table: err = %v, want ErrNoTable", err)
		}
	})

	t.Run("TableTodos", func(t *testing.T) {
		info, err := c.Table(ctx, "public", "todos")
		if err != nil {
			t.Fatal(err)
		}
		want := &channels.TableInfo{Schema: "public", Table: "todos", RLS: true, PrimaryKey: []string{"id"},
			Columns: []channels.TableColumn{{Name: "id", Type: "int8"}, {Name: "user_id", Type: "uuid"}, {Name: "title", Type: "text"}, {Name: "secret", Type: "text"}}}
		if !tableInfoEqual(info, want) {
			t.Fatalf("Table = %+v, want %+v", info, want)
		}
	})

	t.Run("TableTypes", func(t *testing.T) {
		info, err := c.Table(ctx, "public", "typed")
		if err != nil {
			t.Fatal(err)
		}
		want := &channels.TableInfo{Schema: "public", Table: "typed", RLS: true, PrimaryKey: []string{"id"},
			Columns: []channels.TableColumn{{Name: "id", Type: "posint"}, {Name: "tags", Type: "_text"}, {Name: "nums", Type: "_int4"},
				{Name: "v", Type: "varchar"}, {Name: "m", Type: "mood"}, {Name: "at", Type: "timestamptz"}}}
		if !tableInfoEqual(info, want) {
			t.Fatalf("Table = %+v, want %+v", info, want)
		}
		// Domain primary key and enum policy.
		got, err := visibleByKey(ctx, c, mkClaims(t, "authenticated", alice, nil), "public", "typed", keysOf("1", "2", "3"))
		if err != nil {
			t.Fatal(err)
		}
		if want := []bool{true, false, false}; !slices.Equal(got, want) {
			t.Fatalf("Visible = %v, want %v", got, want)
		}
	})

	t.Run("EnumKey", func(t *testing.T) {
		// An enum key is cast to its type like any other image value.
		got, err := visibleByKey(ctx, c, mkClaims(t, "authenticated", bob, nil), "public", "moods", keysOf("happy", "sad"))
		if err != nil {
			t.Fatal(err)
		}
		if want := []bool{false, true}; !slices.Equal(got, want) {
			t.Fatalf("Visible = %v, want %v", got, want)
		}
	})

	t.Run("TableMissing", func(t *testing.T) {
		for _, name := range []string{"no_such_table", strings.Repeat("x", 64), "a\x00b", ""} {
			if info, err := c.Table(ctx, "public", name); !errors.Is(err, channels.ErrNoTable) || info != nil {
				t.Errorf("Table(%q) = %v, %v; want nil, ErrNoTable", name, info, err)
			}
		}
		if _, err := visibleByKey(ctx, c, mkClaims(t, "authenticated", alice, nil), "public", "no_such_table", keysOf("1")); !errors.Is(err, channels.ErrNoTable) {
			t.Errorf("Visible on missing table: err = %v, want ErrNoTable", err)
		}
	})

	t.Run("TableWithoutPrimaryKey", func(t *testing.T) {
		info, err := c.Table(ctx, "public", "nopk")
		if err != nil {
			t.Fatal(err)
		}
		if info.PrimaryKey != nil || info.RLS || len(info.Columns) != 1 {
			t.Fatalf("Table = %+v", info)
		}
		if _, err := visibleByKey(ctx, c, mkClaims(t, "authenticated", alice, nil), "public", "nopk", keysOf("1")); !errors.Is(err, ErrNoPrimaryKey) {
			t.Errorf("err = %v, want ErrNoPrimaryKey", err)
		}
	})

	t.Run("VisibleCompositeKey", func(t *testing.T) {
		info, err := c.Table(ctx, "public", "members")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"user_name", "org_id"}; !slices.Equal(info.PrimaryKey, want) {
			t.Fatalf("PrimaryKey = %v, want %v (key order, not column order)", info.PrimaryKey, want)
		}
		keys := [][]string{{"alice", "1"}, {"alice", "2"}, {"bob", "1"}, {"alice", "3"}}
		got, err := visibleByKey(ctx, c, mkClaims(t, "authenticated", alice, map[string]any{"name": "alice"}), "public", "members", keys)
		if err != nil {
			t.Fatal(err)
		}
		// ("alice", 3) is not stored: its image holds only the key, which
		// the policy reads, so it is judged visible (images, not live rows).
		if want := []bool{true, true, false, true}; !slices.Equal(got, want) {
			t.Fatalf("alice: Visible = %v, want %v", got, want)
		}
		got, err = visibleByKey(ctx, c, mkClaims(t, "authenticated", bob, map[string]any{"name": "bob"}), "public", "members", keys)
		if err != nil {
			t.Fatal(err)
		}
		if want := []bool{false, false, true, false}; !slices.Equal(got, want) {
			t.Fatalf("bob: Visible = %v, want %v", got, want)
		}
	})

	t.Run("VisibleQuotingAndInjection", func(t *testing.T) {
		aliceKeys := []string{`O'Brien`, `back\slash`, `'); DROP TABLE public.todos; --`, `\'`, `it''s`,
			`ünï ✓`, `$$dollar$$`, `E'\x41'`, `"dq"`}
		for _, k := range aliceKeys {
			if _, err := pool.Exec(ctx, `INSERT INTO "My Schema"."odd ""name""" VALUES ($1, $2)`, k, alice); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := pool.Exec(ctx, `INSERT INTO "My Schema"."odd ""name""" VALUES ($1, $2)`, `bob's`, bob); err != nil {
			t.Fatal(err)
		}
		keys := keysOf(append(slices.Clone(aliceKeys), `bob's`, `x' OR '1'='1`, `x'') OR true --`)...)
		want := make([]bool, len(keys))
		for i := range aliceKeys {
			want[i] = true
		}
		got, err := visibleByKey(ctx, c, mkClaims(t, "authenticated", alice, nil), "My Schema", `odd "name"`, keys)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Visible = %v, want %v", got, want)
		}
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM public.todos`).Scan(&n); err != nil || n != 5 {
			t.Fatalf("todos after injection attempt: count %d, err %v", n, err)
		}
		// Claims with quotes and backslashes are set verbatim too.
		odd := mkClaims(t, "authenticated", alice, map[string]any{"name": `a'b\c"d`})
		got, err = visibleByKey(ctx, c, odd, "My Schema", `odd "name"`, keysOf(`O'Brien`))
		if err != nil || !got[0] {
			t.Fatalf("odd claims: Visible = %v, %v", got, err)
		}
	})

	t.Run("VisibleChunked", func(t *testing.T) {
		var keys [][]string
		var want []bool
		for id := 1; id <= 2600; id++ { // three statements; 2501.. do not exist
			keys = append(keys, []string{strconv.Itoa(id)})
			want = append(want, id%2 == 0 && id <= 2500)
		}
		got, err := visibleByKey(ctx, c, mkClaims(t, "authenticated", alice, nil), "public", "big", keys)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Visible over %d keys differs from the owner pattern", len(keys))
		}
	})

	t.Run("VisibleMissingRole", func(t *testing.T) {
		_, err := visibleByKey(ctx, c, mkClaims(t, "no_such_role", alice, nil), "public", "todos", keysOf("1"))
		if err == nil || !strings.Contains(err.Error(), "no_such_role") {
			t.Fatalf("err = %v, want an error naming the role", err)
		}
		_, err = visibleByKey(ctx, c, mkClaims(t, strings.Repeat("r", 64), alice, nil), "public", "todos", keysOf("1"))
		if !errors.Is(err, channels.ErrNoRole) {
			t.Fatalf("long role: err = %v, want ErrNoRole", err)
		}
	})

	t.Run("VisiblePolicyRaises", func(t *testing.T) {
		// One connection, so the failed batch and the next one share a session.
		pool1 := newPool(t, cl, 1)
		c1 := NewChecker(CheckerConfig{Pool: pool1})
		keys := keysOf("1", "2")
		if got, err := visibleByKey(ctx, c1, mkClaims(t, "authenticated", alice, nil), "public", "guarded", keys); err != nil || !slices.Equal(got, []bool{true, false}) {
			t.Fatalf("alice before: %v, %v", got, err)
		}
		_, err := visibleByKey(ctx, c1, mkClaims(t, "authenticated", mallory, nil), "public", "guarded", keys)
		if err == nil || !strings.Contains(err.Error(), "guard refuses") {
			t.Fatalf("mallory: err = %v, want the policy's exception", err)
		}
		got, err := visibleByKey(ctx, c1, mkClaims(t, "authenticated", bob, nil), "public", "guarded", keys)
		if err != nil || !slices.Equal(got, []bool{false, true}) {
			t.Fatalf("bob after: %v, %v", got, err)
		}
		conn, err := pool1.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		if s := sessionState(t, conn); s != cleanSession {
			t.Fatalf("session after failure: %s, want %s", s, cleanSession)
		}
		// The failed transaction was rolled back, not the connection thrown away.
		if n := pool1.Stat().NewConnsCount(); n != 1 {
			t.Fatalf("pool opened %d connections, want 1", n)
		}
	})

	t.Run("VisibleMissingRoleSameSession", func(t *testing.T) {
		pool1 := newPool(t, cl, 1)
		c1 := NewChecker(CheckerConfig{Pool: pool1})
		if _, err := visibleByKey(ctx, c1, mkClaims(t, "no_such_role", alice, nil), "public", "todos", keysOf("1")); err == nil {
			t.Fatal("missing role: Visible succeeded")
		}
		got, err := visibleByKey(ctx, c1, mkClaims(t, "authenticated", alice, nil), "public", "todos", keysOf("1", "2"))
		if err != nil || !slices.Equal(got, []bool{true, false}) {
			t.Fatalf("after: %v, %v", got, err)
		}
		conn, err := pool1.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		if s := sessionState(t, conn); s != cleanSession {
			t.Fatalf("session after failure: %s, want %s", s, cleanSession)
		}
		if n := pool1.Stat().NewConnsCount(); n != 1 {
			t.Fatalf("pool opened %d connections, want 1", n)
		}
	})

	t.Run("VisibleCanceled", func(t *testing.T) {
		pool1 := newPool(t, cl, 1)
		c1 := NewChecker(CheckerConfig{Pool: pool1})
		if _, err := c1.Table(ctx, "public", "sleepy"); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		slowClaims := mkClaims(t, "authenticated", mallory, nil)
		errc := make(chan error, 1)
		go func() {
			_, err := visibleByKey(cctx, c1, slowClaims, "public", "sleepy", keysOf("1"))
			errc <- err
		}()
		// Cancel once the batch is running on the server (mallory's policy sleeps).
		waitFor(t, func() bool {
			var n int
			err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'`).Scan(&n)
			return err == nil && n > 0
		})
		cancel()
		if err := <-errc; err == nil {
			t.Fatal("canceled Visible succeeded")
		}
		got, err := visibleByKey(ctx, c1, mkClaims(t, "authenticated", alice, nil), "public", "sleepy", keysOf("1"))
		if err != nil || !got[0] {
			t.Fatalf("after cancel: %v, %v", got, err)
		}
	})

	t.Run("CheckerInvalidate", func(t *testing.T) {
		clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
		c2 := NewChecker(CheckerConfig{Pool: pool, CacheTTL: time.Minute})
		c2.now = clock.now
		aliceClaims := mkClaims(t, "authenticated", alice, nil)
		keys := keysOf("1", "2")

		info, err := c2.Table(ctx, "public", "later")
		if err != nil || info.RLS {
			t.Fatalf("Table = %+v, %v; want RLS off", info, err)
		}
		// RLS off: every row is visible without asking.
		if got, err := visibleByKey(ctx, c2, aliceClaims, "public", "later", keys); err != nil || !slices.Equal(got, []bool{true, true}) {
			t.Fatalf("RLS off: %v, %v", got, err)
		}
		if cols, err := c2.SelectableColumns(ctx, "authenticated", "public", "later"); err != nil || len(cols) != 2 {
			t.Fatalf("SelectableColumns = %v, %v", cols, err)
		}
		if _, err := pool.Exec(ctx, `ALTER TABLE public.later ENABLE ROW LEVEL SECURITY; ALTER TABLE public.later ADD COLUMN note text`); err != nil {
			t.Fatal(err)
		}
		// Still cached.
		if info, err := c2.Table(ctx, "public", "later"); err != nil || info.RLS {
			t.Fatalf("cached Table = %+v, %v; want the old answer", info, err)
		}
		c2.Invalidate("public", "later")
		info, err = c2.Table(ctx, "public", "later")
		if err != nil || !info.RLS || len(info.Columns) != 3 {
			t.Fatalf("Table after Invalidate = %+v, %v", info, err)
		}
		if got, err := visibleByKey(ctx, c2, aliceClaims, "public", "later", keys); err != nil || !slices.Equal(got, []bool{true, false}) {
			t.Fatalf("RLS on: %v, %v", got, err)
		}
		if cols, err := c2.SelectableColumns(ctx, "authenticated", "public", "later"); err != nil || !cols["note"] {
			t.Fatalf("SelectableColumns after Invalidate = %v, %v", cols, err)
		}
		// Without Invalidate, the TTL brings the change in.
		if _, err := pool.Exec(ctx, `ALTER TABLE public.later DISABLE ROW LEVEL SECURITY`); err != nil {
			t.Fatal(err)
		}
		clock.advance(59 * time.Second)
		if info, err := c2.Table(ctx, "public", "later"); err != nil || !info.RLS {
			t.Fatalf("before TTL: %+v, %v; want cached RLS on", info, err)
		}
		clock.advance(time.Second)
		if info, err := c2.Table(ctx, "public", "later"); err != nil || info.RLS {
			t.Fatalf("after TTL: %+v, %v; want RLS off", info, err)
		}
	})

	t.Run("CheckerConcurrent", func(t *testing.T) {
		c3 := NewChecker(CheckerConfig{Pool: pool})
		groups := []struct {
			claims *channels.Identity
			want   []bool
		}{
			{mkClaims(t, "authenticated", alice, nil), []bool{true, false, true, false, false}},
			{mkClaims(t, "authenticated", bob, nil), []bool{false, true, false, true, false}},
			{mkClaims(t, "service_role", "", nil), []bool{true, true, true, true, true}},
			{mkClaims(t, "anon", "", nil), []bool{false, false, false, false, false}},
		}
		keys := keysOf("1", "2", "3", "4", "5")
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for w := range 8 {
			wg.Go(func() {
				for i := range 20 {
					g := groups[(w+i)%len(groups)]
					got, err := visibleByKey(ctx, c3, g.claims, "public", "todos", keys)
					if err != nil {
						errs <- err
						return
					}
					if !slices.Equal(got, g.want) {
						errs <- fmt.Errorf("%s: got %v, want %v", g.claims.Sub, got, g.want)
						return
					}
					if _, err := c3.SelectableColumns(ctx, g.claims.Role, "public", "todos"); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	// No test above may leave a role, claims or transaction on a pooled session.
	conns := pool.AcquireAllIdle(ctx)
	if len(conns) == 0 {
		t.Fatal("no idle connections to check")
	}
	for _, conn := range conns {
		if s := sessionState(t, conn); s != cleanSession {
			t.Errorf("pooled session: %s, want %s", s, cleanSession)
		}
		conn.Release()
	}
}

func tableInfoEqual(a, b *channels.TableInfo) bool {
	return a.Schema == b.Schema && a.Table == b.Table && a.RLS == b.RLS &&
		slices.Equal(a.PrimaryKey, b.PrimaryKey) && slices.Equal(a.Columns, b.Columns)
}

// waitFor polls cond until it holds, failing the test after a generous bound.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition never held")
}

// writeJob renders one group: role and claims as quoted literals, the images
// as one text array per column the policy reads, unnested, cast to the
// column types and aliased with the table's name, filtered by the combined
// policy expression; a whole-row reference sends every column.
func TestWriteJobSQL(t *testing.T) {
	e := &tableEntry{
		info: &channels.TableInfo{Schema: "s", Table: `t"x`, RLS: true, PrimaryKey: []string{"a"},
			Columns: []channels.TableColumn{{Name: "a", Type: "int8"}, {Name: `b"c`, Type: "text"}}},
		colCast: []string{"pg_catalog.int8", "pg_catalog.text"},
	}
	rel := &decoder.Relation{Schema: "s", Table: `t"x`, Columns: []decoder.Column{{Name: "a"}, {Name: `b"c`}}}
	claims := &channels.Identity{Role: `r"o`, Sub: `it's`, Claims: json.RawMessage(`{"role":"r\"o","sub":"it's"}`)}
	ck := &channels.RowCheck{ID: claims, Rel: rel, Images: [][]decoder.Value{
		{{Text: "1"}, {Text: `x'y\`}}, {{Text: "2"}, {Null: true}}, {{Text: "3"}, {Absent: true}}}}
	var b strings.Builder
	want := `SET LOCAL ROLE "r""o";` +
		`SELECT pg_catalog.set_config('request.jwt.claims','{"role":"r\"o","sub":"it''s"}',true),` +
		`pg_catalog.set_config('request.jwt.claim.sub','it''s',true),` +
		`pg_catalog.set_config('request.jwt.claim.role','r"o',true);` +
		`SELECT _realtime_image_ord FROM (SELECT _realtime_images._realtime_image_ord,NULL::pg_catalog.int8 AS "a",` +
		`_realtime_images."b""c"::pg_catalog.text AS "b""c" FROM ROWS FROM (pg_catalog.unnest('{0,2}'::pg_catalog.int4[]),` +
		`pg_catalog.unnest('{"x''y\\",NULL}'::pg_catalog.text[])) AS _realtime_images(_realtime_image_ord,"b""c"))` +
		` AS "t""x" WHERE (("b""c" = 'x'::text));`
	ps := &policySet{mode: policyExpr, expr: `(("b""c" = 'x'::text))`, reads: map[string]bool{`b"c`: true}}
	if err := writeJob(&b, &sqlJob{check: ck, e: e, ps: ps, rows: []int{0, 2}}); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != want {
		t.Fatalf("writeJob:\n got %s\nwant %s", got, want)
	}
	for expr, whole := range map[string]bool{
		`("t""x".a = 1)`: false, `(f("t""x".*))`: true, `(f("t""x"))`: true, `(a = 1)`: false,
	} {
		if got := wholeRowRef(expr, `t"x`); got != whole {
			t.Errorf("wholeRowRef(%s) = %v, want %v", expr, got, whole)
		}
	}
	if err := checkIdentity(&channels.Identity{Role: "r", Claims: json.RawMessage("{\"a\":\"\x00\"}")}); err == nil {
		t.Error("NUL in claims accepted")
	}
	if err := checkIdentity(&channels.Identity{Role: "r", Sub: "\xfe"}); err == nil {
		t.Error("invalid UTF-8 sub accepted")
	}
}

// BenchmarkVisible measures one Visible call answering 100 rows (half visible)
// for one claims group, against a real cluster.
func BenchmarkVisible(b *testing.B) {
	_, pool := startRLSDB(b, rlsSchema, 4)
	ctx := context.Background()
	c := NewChecker(CheckerConfig{Pool: pool})
	claims := mkClaims(b, "authenticated", alice, nil)
	keys := make([][]string, 100)
	for i := range keys {
		keys[i] = []string{strconv.Itoa(i*7%2500 + 1)}
	}
	got, err := visibleByKey(ctx, c, claims, "public", "big", keys)
	if err != nil {
		b.Fatal(err)
	}
	if n := countTrue(got); n == 0 || n == len(keys) {
		b.Fatalf("%d of %d visible: the benchmark would not exercise the policy", n, len(keys))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := visibleByKey(ctx, c, claims, "public", "big", keys); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/row")
}

func countTrue(bs []bool) int {
	n := 0
	for _, v := range bs {
		if v {
			n++
		}
	}
	return n
}
