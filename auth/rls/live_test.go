package rls

import (
	"context"
	"strings"
	"testing"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/decoder"
)

// liveSchema has a policy that reads a TOASTed column (notes) and one that
// does not (owned).
const liveSchema = `
CREATE ROLE authenticated NOLOGIN;
GRANT authenticated TO postgres;
CREATE SCHEMA auth;
GRANT USAGE ON SCHEMA auth TO authenticated;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('request.jwt.claim.role', true), '')::text $$;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE
  AS $$ SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb $$;
CREATE TABLE public.notes (id int PRIMARY KEY, title text, body text);
ALTER TABLE public.notes ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY by_body ON public.notes FOR SELECT USING (body LIKE auth.uid()::text || '%');
GRANT SELECT ON public.notes TO authenticated;
CREATE TABLE public.owned (id int PRIMARY KEY, user_id uuid, body text);
ALTER TABLE public.owned ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON public.owned FOR SELECT USING (user_id = auth.uid());
GRANT SELECT ON public.owned TO authenticated;
`

// An image whose policy reads an absent (unchanged TOASTed) value is judged
// with the live value, after one visibility wait; images whose policies read
// only present values need neither the wait nor a live read
// (docs/protocol.md §4.5).
func TestLiveRowFallback(t *testing.T) {
	_, pool := startRLSDB(t, liveSchema, 2)
	ctx := context.Background()
	big := strings.Repeat("x", 20000)
	if _, err := pool.Exec(ctx, `INSERT INTO public.notes VALUES (1, 't', $1), (2, 't', $2);
		INSERT INTO public.owned VALUES (1, '`+alice+`', 'b')`, alice+big, bob+big); err != nil {
		t.Fatal(err)
	}
	c := NewChecker(CheckerConfig{Pool: pool})
	waits := 0
	rel := func(table string) *decoder.Relation {
		info, err := c.Table(ctx, "public", table)
		if err != nil {
			t.Fatal(err)
		}
		return relationOf(info)
	}
	notes, owned := rel("notes"), rel("owned")
	absent := decoder.Value{Absent: true}
	txt := func(s string) decoder.Value { return decoder.Value{Text: s} }
	run := func(checks ...*channels.RowCheck) {
		t.Helper()
		// Each run is one batch, with its own visibility wait.
		vctx := decoder.WithVisibility(ctx, func() error { waits++; return nil })
		if err := c.CheckRows(vctx, checks); err != nil {
			t.Fatal(err)
		}
		for _, ck := range checks {
			if ck.Err != nil {
				t.Fatalf("group %s: %v", ck.ID.Sub, ck.Err)
			}
		}
	}

	// A compiled policy reading present values: no wait, no live read.
	a, b := mkClaims(t, "authenticated", alice, nil), mkClaims(t, "authenticated", bob, nil)
	ownedImg := []decoder.Value{txt("1"), txt(alice), absent}
	ck1 := &channels.RowCheck{ID: a, Rel: owned, Images: [][]decoder.Value{ownedImg}}
	run(ck1)
	if !ck1.Visible[0] || c.Stats().CompiledGroups != 1 {
		t.Errorf("compiled: visible %v, stats %+v", ck1.Visible, c.Stats())
	}
	if waits != 0 || c.Stats().LiveReads != 0 {
		t.Fatalf("compiled policy reading present values: %d visibility waits, %d live reads, want 0 0", waits, c.Stats().LiveReads)
	}
	// A policy PostgreSQL evaluates may read other rows of the batch's
	// transactions: one wait, still no live read of the image's row.
	notesFull := []decoder.Value{txt("1"), txt("t2"), txt(alice + "y")}
	ck2 := &channels.RowCheck{ID: a, Rel: notes, Images: [][]decoder.Value{notesFull}}
	run(ck2)
	if !ck2.Visible[0] || waits != 1 || c.Stats().LiveReads != 0 {
		t.Fatalf("SQL policy on present values: visible %v, %d waits, %d live reads; want true 1 0", ck2.Visible, waits, c.Stats().LiveReads)
	}
	waits = 0

	// body unchanged and TOASTed: absent from the image, read live.
	img1 := []decoder.Value{txt("1"), txt("t2"), absent}
	img2 := []decoder.Value{txt("2"), txt("t2"), absent}
	ca := &channels.RowCheck{ID: a, Rel: notes, Images: [][]decoder.Value{img1, img2}}
	cb := &channels.RowCheck{ID: b, Rel: notes, Images: [][]decoder.Value{img1, img2}}
	run(ca, cb)
	if ca.Visible[0] != true || ca.Visible[1] != false || cb.Visible[0] != false || cb.Visible[1] != true {
		t.Errorf("absent body: alice sees %v, bob sees %v; want [true false], [false true]", ca.Visible, cb.Visible)
	}
	if waits != 1 {
		t.Errorf("%d visibility waits for one batch needing live rows, want 1", waits)
	}
	if got := c.Stats().LiveReads; got != 1 {
		t.Errorf("%d live reads for one table, want 1", got)
	}
	if !img1[2].Absent || !img2[2].Absent {
		t.Error("the change's own values were modified")
	}
}
