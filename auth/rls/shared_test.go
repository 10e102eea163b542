package rls

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/decoder"
)

// The auth calls become the claims row's columns outside string constants
// and quoted names; texts that may read the claims another way are refused.
func TestSharedExpr(t *testing.T) {
	for expr, want := range map[string]string{
		"(user_id = auth.uid())":                               "(user_id = _realtime_claims._realtime_claim_uid)",
		"(( SELECT auth.uid() AS uid) = user_id)":              "(( SELECT _realtime_claims._realtime_claim_uid AS uid) = user_id)",
		"((auth.jwt() ->> 'auth.uid()'::text) = email)":        "((_realtime_claims._realtime_claim_jwt ->> 'auth.uid()'::text) = email)",
		"(auth.role() = 'it''s auth.role()'::text)":            "(_realtime_claims._realtime_claim_role = 'it''s auth.role()'::text)",
		"(\"auth.uid()\" = auth.uid())":                        "(\"auth.uid()\" = _realtime_claims._realtime_claim_uid)",
		"(EXISTS ( SELECT 1 FROM m WHERE (m.u = auth.uid())))": "(EXISTS ( SELECT 1 FROM m WHERE (m.u = _realtime_claims._realtime_claim_uid)))",
		"(team > 1)": "(team > 1)",
		"(owner = (NULLIF(current_setting('request.jwt.claim.sub'::text, true), ''::text))::uuid)": "",
		"(x = (query_to_xml('select 1'::text, true, true, ''::text))::text)":                       "",
		"(email = E'\\\\'::text)":                 "",
		"(\"auth\".uid() = user_id)":              "",
		"(auth.email() = email)":                  "",
		"(auth.uid_other() = user_id)":            "",
		"(email = 'unterminated)":                 "",
		"(x = (SELECT setting FROM pg_settings))": "",
	} {
		got, ok := sharedExpr(expr)
		if ok != (want != "") || got != want {
			t.Errorf("sharedExpr(%q) = %q, %v; want %q", expr, got, ok, want)
		}
	}
}

// sharedSchema adds to diffSchema a table whose policy casts a claim: a
// group with a claim that does not cast makes the shared statement raise.
const sharedSchema = diffSchema + `
CREATE TABLE public.scored (id int PRIMARY KEY, team int);
ALTER TABLE public.scored ENABLE ROW LEVEL SECURITY;
CREATE POLICY by_claim ON public.scored FOR SELECT USING (team = (auth.jwt() ->> 'team')::int);
GRANT SELECT ON public.scored TO authenticated;
`

// Groups of one role are judged by one statement; when it raises because
// of one group, that group alone is denied and the others are answered.
func TestSharedStatementIsolatesFailure(t *testing.T) {
	_, pool := startRLSDB(t, sharedSchema, 2)
	ctx := context.Background()
	c := NewChecker(CheckerConfig{Pool: pool})
	info, err := c.Table(ctx, "public", "scored")
	if err != nil {
		t.Fatal(err)
	}
	rel := relationOf(info)
	var images [][]decoder.Value
	for i := range 4 {
		images = append(images, []decoder.Value{{Text: strconv.Itoa(i)}, {Text: strconv.Itoa(i % 2)}})
	}
	mk := func(team any) *channels.RowCheck {
		return &channels.RowCheck{ID: mkClaims(t, "authenticated", alice, map[string]any{"team": team}), Rel: rel, Images: images}
	}
	checks := []*channels.RowCheck{mk(0), mk(1), mk("1")}
	if err := c.CheckRows(ctx, checks); err != nil {
		t.Fatal(err)
	}
	want := [][]bool{{true, false, true, false}, {false, true, false, true}, {false, true, false, true}}
	for k, ck := range checks {
		if ck.Err != nil || !slices.Equal(ck.Visible, want[k]) {
			t.Errorf("check %d: %v %v, want %v", k, ck.Visible, ck.Err, want[k])
		}
	}
	st := c.Stats()
	if st.SharedGroups != 3 || st.SQLGroups != 3 {
		t.Fatalf("stats %+v, want 3 groups judged in one statement", st)
	}

	checks = []*channels.RowCheck{mk(1), mk("not a number"), mk(0)}
	if err := c.CheckRows(ctx, checks); err != nil {
		t.Fatal(err)
	}
	if checks[1].Err == nil || errors.Is(checks[1].Err, channels.ErrTransient) {
		t.Errorf("bad claim: err %v, want a permanent denial", checks[1].Err)
	}
	if checks[0].Err != nil || !slices.Equal(checks[0].Visible, want[1]) || checks[2].Err != nil || !slices.Equal(checks[2].Visible, want[0]) {
		t.Errorf("others: %v %v, %v %v", checks[0].Visible, checks[0].Err, checks[2].Visible, checks[2].Err)
	}
	if st2 := c.Stats(); st2.SharedGroups != st.SharedGroups || st2.SQLGroups != st.SQLGroups+2 {
		t.Fatalf("stats %+v after %+v: the failed statement's groups are judged alone", st2, st)
	}
}
