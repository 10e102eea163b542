package rls

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/decoder"
)

// diffSchema: Supabase-style roles and auth functions, a table owned by a
// role of its own, and a membership table a policy can read.
const diffSchema = `
CREATE ROLE anon NOLOGIN;
CREATE ROLE authenticated NOLOGIN;
CREATE ROLE service_role NOLOGIN BYPASSRLS;
CREATE ROLE tabowner NOLOGIN;
CREATE ROLE staff NOLOGIN;
GRANT authenticated TO staff;
GRANT anon, authenticated, service_role, tabowner, staff TO postgres;
CREATE SCHEMA auth;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role, tabowner, staff;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('request.jwt.claim.role', true), '')::text $$;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE
  AS $$ SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb $$;
CREATE TABLE public.members (uid uuid, team int);
GRANT SELECT ON public.members TO anon, authenticated, service_role, tabowner, staff;
CREATE TABLE public.docs (id int PRIMARY KEY, owner uuid, team int, email text, title varchar(20), flag boolean);
ALTER TABLE public.docs OWNER TO tabowner;
GRANT SELECT ON public.docs TO anon, authenticated, service_role, staff;
CREATE TABLE public.own_teams (uid uuid, team int);
ALTER TABLE public.own_teams ENABLE ROW LEVEL SECURITY;
CREATE POLICY mine ON public.own_teams FOR SELECT USING (uid = auth.uid());
GRANT SELECT ON public.own_teams TO anon, authenticated, service_role, tabowner, staff;
CREATE FUNCTION public.my_sub() RETURNS uuid LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
`

var diffUsers = []string{alice, bob, mallory, "33333333-3333-3333-3333-333333333333"}

// diffPolicies are the USING expressions the random policy sets draw from:
// shapes that compile and shapes that need PostgreSQL.
var diffPolicies = []string{
	"owner = auth.uid()",
	"(select auth.uid()) = owner",
	"auth.role() = 'authenticated'",
	"auth.role() = 'anon' AND team = 1",
	"email = (auth.jwt() ->> 'email')",
	"title = (auth.jwt() ->> 'email')",
	"true",
	"false",
	"email = 'a@x'",
	"owner = auth.uid() OR auth.role() = 'anon'",
	"(owner = auth.uid()) AND (email = (auth.jwt() ->> 'email') OR team = 2)",
	"EXISTS (SELECT 1 FROM public.members m WHERE m.uid = auth.uid() AND m.team = docs.team)",
	"flag",
	"team > 1",
	// Shapes PostgreSQL judges for many groups in one statement, and shapes
	// that read the claims by other ways and so must be judged alone.
	"EXISTS (SELECT 1 FROM public.members m WHERE m.uid = (select auth.uid()) AND m.team = docs.team) OR auth.role() = 'anon'",
	"auth.uid() IS NULL OR (auth.jwt() ->> 'email') = 'b@x'",
	"EXISTS (SELECT 1 FROM public.own_teams o WHERE o.team = docs.team)",
	"owner = public.my_sub()",
	"owner = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid",
}

var diffTo = []string{"PUBLIC", "authenticated", "anon", "staff", "authenticated, anon", "tabowner"}

// The compiled evaluator and the SQL evaluator agree with PostgreSQL's own
// SELECT under SET ROLE over random rows, claims and policy sets.
func TestDifferentialAgainstPostgres(t *testing.T) {
	_, pool := startRLSDB(t, diffSchema, 4)
	ctx := context.Background()
	compiled := NewChecker(CheckerConfig{Pool: pool, CacheTTL: -1})
	sqlOnly := NewChecker(CheckerConfig{Pool: pool, CacheTTL: -1, NoCompile: true})
	rng := rand.New(rand.NewPCG(17, 42))
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	var ids []*channels.Identity
	for _, role := range []string{"authenticated", "anon", "service_role", "tabowner", "staff"} {
		for _, sub := range append([]string{""}, diffUsers...) {
			extra := map[string]any{}
			if rng.IntN(2) == 0 {
				extra["email"] = pick([]string{"a@x", "b@x", "c@x"})
			}
			ids = append(ids, mkClaims(t, role, sub, extra))
		}
	}
	decisions, disagreements := 0, 0
	const rounds = 40
	for round := range rounds {
		var setup strings.Builder
		setup.WriteString("DELETE FROM public.docs; DELETE FROM public.members;")
		setup.WriteString("DO $$ DECLARE p record; BEGIN FOR p IN SELECT polname FROM pg_policy WHERE polrelid = 'public.docs'::regclass LOOP EXECUTE format('DROP POLICY %I ON public.docs', p.polname); END LOOP; END $$;")
		if rng.IntN(6) == 0 {
			setup.WriteString("ALTER TABLE public.docs DISABLE ROW LEVEL SECURITY;")
		} else {
			setup.WriteString("ALTER TABLE public.docs ENABLE ROW LEVEL SECURITY;")
		}
		if rng.IntN(3) == 0 {
			setup.WriteString("ALTER TABLE public.docs FORCE ROW LEVEL SECURITY;")
		} else {
			setup.WriteString("ALTER TABLE public.docs NO FORCE ROW LEVEL SECURITY;")
		}
		for k := range rng.IntN(4) {
			kind := "PERMISSIVE"
			if rng.IntN(3) == 0 {
				kind = "RESTRICTIVE"
			}
			cmd := "SELECT"
			if rng.IntN(3) == 0 {
				cmd = "ALL"
			}
			fmt.Fprintf(&setup, "CREATE POLICY p%d ON public.docs AS %s FOR %s TO %s USING (%s);", k, kind, cmd, pick(diffTo), pick(diffPolicies))
		}
		setup.WriteString("DELETE FROM public.own_teams;")
		for u := range diffUsers {
			fmt.Fprintf(&setup, "INSERT INTO public.members VALUES ('%s', %d);", diffUsers[u], rng.IntN(3)+1)
			fmt.Fprintf(&setup, "INSERT INTO public.own_teams VALUES ('%s', %d);", diffUsers[u], rng.IntN(3)+1)
		}
		const rows = 30
		for i := range rows {
			owner := "NULL"
			if rng.IntN(5) > 0 {
				owner = "'" + pick(diffUsers) + "'"
			}
			email := "NULL"
			if rng.IntN(4) > 0 {
				email = "'" + pick([]string{"a@x", "b@x", "c@x"}) + "'"
			}
			flag := pick([]string{"true", "false", "NULL"})
			fmt.Fprintf(&setup, "INSERT INTO public.docs VALUES (%d, %s, %d, %s, %s, %s);", i, owner, rng.IntN(3)+1, email, pick([]string{"'a@x'", "'t'", "NULL"}), flag)
		}
		if _, err := pool.Exec(ctx, setup.String()); err != nil {
			t.Fatalf("round %d setup: %v", round, err)
		}
		compiled.InvalidateAll()
		sqlOnly.InvalidateAll()
		info, err := compiled.Table(ctx, "public", "docs")
		if err != nil {
			t.Fatal(err)
		}
		var images [][]decoder.Value
		for i := range rows {
			img, err := liveImage(ctx, compiled, info, []string{strconv.Itoa(i)})
			if err != nil {
				t.Fatal(err)
			}
			images = append(images, img)
		}
		rel := relationOf(info)
		truths := make([][]bool, len(ids))
		for k, id := range ids {
			truth, err := selectAs(ctx, pool, id, rows)
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, id.Claims, err)
			}
			truths[k] = truth
			for name, c := range map[string]*Checker{"compiled": compiled, "sql": sqlOnly} {
				ck := &channels.RowCheck{ID: id, Rel: rel, Images: images}
				if err := c.CheckRows(ctx, []*channels.RowCheck{ck}); err != nil {
					t.Fatal(err)
				}
				if ck.Err != nil {
					t.Fatalf("round %d, %s, %s: %v", round, name, id.Claims, ck.Err)
				}
				decisions += rows
				if !slices.Equal(ck.Visible, truth) {
					disagreements++
					var pols []string
					pool.QueryRow(ctx, "SELECT string_agg(polname || ' ' || polpermissive::text || ' ' || polroles::regrole[]::text || ' ' || pg_get_expr(polqual, polrelid), '; ') FROM pg_policy").Scan(&pols)
					t.Errorf("round %d, %s evaluator, role %s claims %s:\n got %v\nwant %v\npolicies %v", round, name, id.Role, id.Claims, ck.Visible, truth, pols)
				}
			}
		}
		// Every identity in one call, as a batch's groups arrive: groups of
		// one role may share a statement.
		for name, c := range map[string]*Checker{"compiled batch": compiled, "sql batch": sqlOnly} {
			checks := make([]*channels.RowCheck, len(ids))
			for k, id := range ids {
				checks[k] = &channels.RowCheck{ID: id, Rel: rel, Images: images}
			}
			if err := c.CheckRows(ctx, checks); err != nil {
				t.Fatal(err)
			}
			for k, ck := range checks {
				decisions += rows
				if ck.Err != nil || !slices.Equal(ck.Visible, truths[k]) {
					disagreements++
					t.Errorf("round %d, %s, role %s claims %s:\n got %v (err %v)\nwant %v", round, name, ck.ID.Role, ck.ID.Claims, ck.Visible, ck.Err, truths[k])
				}
			}
		}
	}
	st := compiled.Stats()
	t.Logf("%d decisions, %d disagreements; compiled groups %d, SQL groups %d", decisions, disagreements, st.CompiledGroups, st.SQLGroups)
	if st.CompiledGroups == 0 || st.SQLGroups == 0 {
		t.Fatalf("both paths must be exercised: %+v", st)
	}
	if s := sqlOnly.Stats(); s.SharedGroups == 0 || s.SharedGroups == s.SQLGroups {
		t.Fatalf("groups judged together and alone must both be exercised: %+v", s)
	}
	if s := sqlOnly.Stats(); s.CompiledGroups != 0 {
		t.Fatalf("NoCompile checker compiled %d groups", s.CompiledGroups)
	}
}

// selectAs is the oracle: which ids of public.docs PostgreSQL itself
// returns to a SELECT as id's role with id's claims.
func selectAs(ctx context.Context, pool *pgxpool.Pool, id *channels.Identity, rows int) ([]bool, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+pgx.Identifier{id.Role}.Sanitize()); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('request.jwt.claims', $1, true), set_config('request.jwt.claim.sub', $2, true),
		set_config('request.jwt.claim.role', $3, true)`, string(id.Claims), id.Sub, id.Role); err != nil {
		return nil, err
	}
	r, err := tx.Query(ctx, "SELECT id FROM public.docs")
	if err != nil {
		return nil, err
	}
	got := make([]bool, rows)
	for r.Next() {
		var i int
		if err := r.Scan(&i); err != nil {
			return nil, err
		}
		got[i] = true
	}
	return got, r.Err()
}

// The common shapes compile as pg_get_expr renders them; others do not.
func TestCompileShapes(t *testing.T) {
	cols := map[string]string{"user_id": "uuid", "email": "text", "v": "varchar", "n": "int4"}
	for expr, want := range map[string]bool{
		"(user_id = auth.uid())":                   true,
		"(( SELECT auth.uid() AS uid) = user_id)":  true,
		"(auth.role() = 'authenticated'::text)":    true,
		"(email = (auth.jwt() ->> 'email'::text))": true,
		"((v)::text = (auth.jwt() ->> 'x'::text))": true,
		"true": true,
		"((user_id = auth.uid()) OR (auth.role() = 'service_role'::text)) AND true": true,
		"(email = 'it''s'::text)":  true,
		"(n = 1)":                  false,
		"(email = auth.uid())":     false,
		"(user_id = public.uid())": false,
		"(EXISTS ( SELECT 1 FROM public.m WHERE (m.uid = auth.uid())))": false,
		"(v = (auth.jwt() ->> 'x'::text))":                              false,
		"(user_id <> auth.uid())":                                       false,
	} {
		if got := compileExpr(expr, cols) != nil; got != want {
			t.Errorf("compileExpr(%q) compiled = %v, want %v", expr, got, want)
		}
	}
	if _, err := parseUUID("{11111111-1111-1111-1111-111111111111}"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"1111", "11111111-1111-1111-1111-11111111111g", "-11111111111111111111111111111111", "{11111111111111111111111111111111"} {
		if _, err := parseUUID(bad); err == nil {
			t.Errorf("parseUUID(%q) accepted", bad)
		}
	}
}

// A group whose check can never succeed (a sub with a NUL byte, a missing
// role, a policy that raises) is denied alone; the others of the same call
// are answered and nothing is reported as transient.
func TestCheckRowsIsolatesPermanentFailures(t *testing.T) {
	_, pool := startRLSDB(t, rlsSchema, 2)
	ctx := context.Background()
	for _, noCompile := range []bool{false, true} {
		c := NewChecker(CheckerConfig{Pool: pool, NoCompile: noCompile})
		info, err := c.Table(ctx, "public", "guarded")
		if err != nil {
			t.Fatal(err)
		}
		rel := relationOf(info)
		img := func(owner string) []decoder.Value { return []decoder.Value{{Text: "1"}, {Text: owner}} }
		images := [][]decoder.Value{img(alice), img(bob)}
		nul := mkClaims(t, "authenticated", alice, nil)
		nul.Sub = "a\x00b"
		checks := []*channels.RowCheck{
			{ID: nul, Rel: rel, Images: images},
			{ID: mkClaims(t, "authenticated", mallory, nil), Rel: rel, Images: images}, // the policy raises
			{ID: mkClaims(t, "no_such_role", alice, nil), Rel: rel, Images: images},
			{ID: mkClaims(t, "authenticated", alice, nil), Rel: rel, Images: images},
			{ID: mkClaims(t, "authenticated", bob, nil), Rel: rel, Images: images},
		}
		if err := c.CheckRows(ctx, checks); err != nil {
			t.Fatalf("CheckRows: %v", err)
		}
		for i := range 3 {
			if checks[i].Err == nil || errors.Is(checks[i].Err, channels.ErrTransient) {
				t.Errorf("noCompile=%v check %d: err %v, want a permanent denial", noCompile, i, checks[i].Err)
			}
		}
		if !slices.Equal(checks[3].Visible, []bool{true, false}) || !slices.Equal(checks[4].Visible, []bool{false, true}) || checks[3].Err != nil || checks[4].Err != nil {
			t.Errorf("noCompile=%v: alice %v %v, bob %v %v", noCompile, checks[3].Visible, checks[3].Err, checks[4].Visible, checks[4].Err)
		}
	}
}
