package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openrealtime/realtime/realtime/admin"
)

// With --rls-verify 1 every compiled decision is re-checked by PostgreSQL:
// the verification and disagreement counters reach /metrics and the
// inspector's replication view. Batches whose policies read only values
// of the image cause no visibility wait; an UPDATE leaving a TOASTed column
// that the policy reads unchanged is judged on the live value, after one
// (docs/protocol.md §4.5).
func TestRLSVerifyCountersAndLiveFallback(t *testing.T) {
	e := newEnv(t)
	e.exec(t, `CREATE TABLE public.notes (id int PRIMARY KEY, title text, body text);
		ALTER TABLE public.notes ALTER COLUMN body SET STORAGE EXTERNAL;
		ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
		CREATE POLICY by_body ON public.notes FOR SELECT USING (body LIKE auth.uid()::text || '%');
		GRANT SELECT ON public.notes TO authenticated;
		ALTER PUBLICATION supabase_realtime ADD TABLE public.notes`)
	const token = "op-token-verify"
	s := e.startService(t, "", "--rls-verify", "1", "--admin-token", token)
	get := func(path string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	metric := func(body, name string) float64 {
		t.Helper()
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
		}
		t.Fatalf("metric %s missing", name)
		return 0
	}
	replication := func() admin.Replication {
		t.Helper()
		var rep admin.Replication
		if err := json.Unmarshal([]byte(get("/admin/api/replication")), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.RLS == nil {
			t.Fatal("replication view without rls counters")
		}
		return rep
	}

	alice := s.dial(t, e.keys.Anon)
	alice.join("realtime:a", e.keys.User, todos, map[string]any{"event": "UPDATE", "schema": "public", "table": "notes"})
	alice.next("system", 10*time.Second)
	for i := range 5 {
		e.exec(t, "INSERT INTO todos (user_id, title) VALUES ($1, $2)", e.keys.UserID, "mine "+strconv.Itoa(i))
		e.exec(t, "INSERT INTO todos (user_id, title) VALUES ($1, 'not mine')", e.keys.User2ID)
	}
	for i := range 5 {
		if _, rec, _ := changeRecord(t, alice.next("postgres_changes", 10*time.Second)); rec["title"] != "mine "+strconv.Itoa(i) {
			t.Fatalf("alice got %v", rec)
		}
	}
	rep := replication()
	if rep.RLS.VerifyFraction != 1 || rep.RLS.VerifiedGroups == 0 || rep.RLS.Disagreements != 0 || rep.RLS.CompiledGroups == 0 {
		t.Fatalf("rls counters after verified inserts: %+v", *rep.RLS)
	}
	if rep.VisibilityWaits != 0 || rep.RLS.LiveReads != 0 {
		t.Fatalf("policies reading only the image: %d visibility waits, %d live reads; want 0", rep.VisibilityWaits, rep.RLS.LiveReads)
	}
	m := get("/metrics")
	if v := metric(m, "realtime_pg_rls_verified_groups_total"); v != float64(rep.RLS.VerifiedGroups) && v < 1 {
		t.Errorf("realtime_pg_rls_verified_groups_total = %v", v)
	}
	if v := metric(m, "realtime_pg_rls_verify_disagreements_total"); v != 0 {
		t.Errorf("realtime_pg_rls_verify_disagreements_total = %v", v)
	}
	if v := metric(m, "realtime_pg_rls_verify_fraction"); v != 1 {
		t.Errorf("realtime_pg_rls_verify_fraction = %v", v)
	}

	// body stays unchanged (TOASTed, absent from the UPDATE's image): read live.
	big := strings.Repeat("z", 20000)
	e.exec(t, "INSERT INTO notes VALUES (1, 'a', $1), (2, 'b', $2)", e.keys.UserID+big, e.keys.User2ID+big)
	e.exec(t, "UPDATE notes SET title = title || '2'")
	e.exec(t, "UPDATE notes SET title = 'a3', body = $1 WHERE id = 1", e.keys.UserID+"short")
	for _, want := range []string{"a2", "a3"} {
		if _, rec, _ := changeRecord(t, alice.next("postgres_changes", 10*time.Second)); rec["title"] != want {
			t.Fatalf("alice got %v, want title %s", rec, want)
		}
	}
	rep = replication()
	if rep.VisibilityWaits < 1 || rep.RLS.LiveReads < 1 {
		t.Fatalf("TOAST fallback: %d visibility waits, %d live reads; want ≥ 1", rep.VisibilityWaits, rep.RLS.LiveReads)
	}
	if v := metric(get("/metrics"), "realtime_pg_rls_live_reads_total"); v != float64(rep.RLS.LiveReads) {
		t.Errorf("realtime_pg_rls_live_reads_total = %v, inspector %d", v, rep.RLS.LiveReads)
	}
}
