package channels

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/openrealtime/realtime/decoder"
)

func user(sub string) *Identity {
	claims := `{"role":"authenticated","sub":"` + sub + `"}`
	return &Identity{Role: "authenticated", Sub: sub, Claims: json.RawMessage(claims), Key: claims}
}

// ownerVisible makes Visible grant rows whose owner (looked up by id in
// owners) equals the identity's sub.
func ownerVisible(owners map[string]string) func(*Identity, [][]string) ([]bool, error) {
	return func(id *Identity, keys [][]string) ([]bool, error) {
		out := make([]bool, len(keys))
		for i, k := range keys {
			out[i] = owners[k[0]] == id.Sub
		}
		return out, nil
	}
}

func activate(t *testing.T, p *PGChanges, s *Subscription, raw ...string) {
	t.Helper()
	var rs []json.RawMessage
	for _, r := range raw {
		rs = append(rs, json.RawMessage(r))
	}
	if err := p.Activate(s, p.Bind(rs)); err != nil {
		t.Fatalf("activate %v: %v", raw, err)
	}
}

func changeData(t *testing.T, f Frame) (ids []int64, data map[string]any) {
	t.Helper()
	parts := strings.SplitN(string(f.Data), "|", 4)
	if len(parts) != 4 || parts[0] != "change" {
		t.Fatalf("not a change frame: %s", f.Data)
	}
	json.Unmarshal([]byte(parts[2]), &ids)
	if err := json.Unmarshal([]byte(parts[3]), &data); err != nil {
		t.Fatalf("data is not JSON: %s", parts[3])
	}
	return ids, data
}

// RLS is asked once per batch, with one group per identity and table,
// however many subscribers share the identity; each user gets only their
// rows.
func TestProcessGroupsRLSByIdentity(t *testing.T) {
	h := NewHub(HubConfig{})
	auth := newFakeAuth()
	auth.visible = ownerVisible(map[string]string{"1": "alice", "2": "bob", "3": "alice"})
	p := NewPGChanges(PGConfig{Hub: h, Auth: auth})
	var alices []*recWriter
	for i := 0; i < 10; i++ {
		s, w := newSub(h, "realtime:a", user("alice"))
		h.Subscribe(s)
		activate(t, p, s, `{"event":"*","schema":"public","table":"todos"}`)
		alices = append(alices, w)
	}
	bob, bw := newSub(h, "realtime:b", user("bob"))
	h.Subscribe(bob)
	activate(t, p, bob, `{"event":"INSERT","schema":"public","table":"todos"}`)

	batch := []decoder.Change{insertTodo(1, "alice", "a1"), insertTodo(2, "bob", "b1"), insertTodo(3, "alice", "a2")}
	if err := p.Process(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if n, g := auth.calls.Load(), auth.groups.Load(); n != 1 || g != 2 {
		t.Fatalf("CheckRows called %d times with %d groups, want once with 2 (one per identity)", n, g)
	}
	for _, w := range alices {
		fs := w.all()
		if len(fs) != 2 {
			t.Fatalf("alice got %d frames", len(fs))
		}
		for i, want := range []string{"a1", "a2"} {
			_, d := changeData(t, fs[i])
			rec := d["record"].(map[string]any)
			if rec["title"] != want {
				t.Fatalf("alice frame %d: %v", i, rec)
			}
			if _, ok := rec["secret"]; ok {
				t.Fatal("secret column delivered to authenticated")
			}
			if d["commit_timestamp"] != "2024-05-01T12:00:00.123Z" || d["errors"] != nil || d["type"] != "INSERT" {
				t.Fatalf("data: %v", d)
			}
		}
	}
	// The ten alice subscribers share one encoded frame.
	if &alices[0].all()[0].Data[0] != &alices[9].all()[0].Data[0] {
		t.Fatal("identical frames were encoded twice")
	}
	if fs := bw.all(); len(fs) != 1 {
		t.Fatalf("bob got %d frames", len(fs))
	}
	if bob.Dropped(DropRLS) != 2 {
		t.Fatalf("bob rls drops = %d", bob.Dropped(DropRLS))
	}
}

// A group whose RLS query fails is denied; other groups are served. A
// transient failure fails the batch before anything is sent.
func TestProcessPolicyErrorsAndTransientFailures(t *testing.T) {
	h := NewHub(HubConfig{})
	auth := newFakeAuth()
	owners := map[string]string{"1": "alice", "2": "bob"}
	fail := error(errors.New("policy raised"))
	auth.visible = func(id *Identity, keys [][]string) ([]bool, error) {
		if id.Sub == "bob" {
			return nil, fail
		}
		return ownerVisible(owners)(id, keys)
	}
	p := NewPGChanges(PGConfig{Hub: h, Auth: auth})
	alice, aw := newSub(h, "realtime:x", user("alice"))
	bob, bw := newSub(h, "realtime:x", user("bob"))
	for _, s := range []*Subscription{alice, bob} {
		h.Subscribe(s)
		activate(t, p, s, `{"event":"*","schema":"public","table":"todos"}`)
	}
	if err := p.Process(context.Background(), []decoder.Change{insertTodo(1, "alice", "a"), insertTodo(2, "bob", "b")}); err != nil {
		t.Fatal(err)
	}
	if len(aw.all()) != 1 || len(bw.all()) != 0 {
		t.Fatalf("alice %d frames, bob %d", len(aw.all()), len(bw.all()))
	}
	fail = ErrTransient
	if err := p.Process(context.Background(), []decoder.Change{insertTodo(1, "alice", "again")}); !errors.Is(err, ErrTransient) {
		t.Fatalf("want a transient error, got %v", err)
	}
	if len(aw.all()) != 1 {
		t.Fatal("frames were sent for a batch that will be redelivered")
	}
}

func TestProcessFiltersEventsAndBindingIDs(t *testing.T) {
	h := NewHub(HubConfig{})
	auth := newFakeAuth()
	auth.tables["public.todos"].RLS = false
	p := NewPGChanges(PGConfig{Hub: h, Auth: auth})
	s, w := newSub(h, "realtime:f", &Identity{Role: "service_role", Key: "svc"})
	h.Subscribe(s)
	b1 := `{"event":"INSERT","schema":"public","table":"todos","filter":"title=eq.x"}`
	b2 := `{"event":"*","schema":"public","table":"*"}`
	activate(t, p, s, b1, b2)
	id1, id2 := BindingID(json.RawMessage(b1)), BindingID(json.RawMessage(b2))
	del := decoder.Change{Kind: decoder.Delete, Rel: todosRel, Position: 9, Old: []decoder.Value{intVal(7), {Absent: true}, {Absent: true}, {Absent: true}}}
	p.Process(context.Background(), []decoder.Change{insertTodo(1, "o", "x"), insertTodo(2, "o", "y"), del})
	fs := w.all()
	if len(fs) != 3 {
		t.Fatalf("got %d frames", len(fs))
	}
	ids, _ := changeData(t, fs[0])
	if len(ids) != 2 || ids[0] != id1 || ids[1] != id2 {
		t.Fatalf("frame 1 ids %v want [%d %d]", ids, id1, id2)
	}
	ids, _ = changeData(t, fs[1])
	if len(ids) != 1 || ids[0] != id2 {
		t.Fatalf("frame 2 ids %v", ids)
	}
	_, d := changeData(t, fs[2])
	if d["type"] != "DELETE" || d["record"] != nil || d["old_record"].(map[string]any)["id"] != float64(7) {
		t.Fatalf("delete data %v", d)
	}
	if s.Dropped(DropFilter) != 0 {
		// change 2 matched the wildcard binding, so nothing was filtered out.
		t.Fatalf("filter drops %d", s.Dropped(DropFilter))
	}
}

func TestBindErrors(t *testing.T) {
	h := NewHub(HubConfig{})
	p := NewPGChanges(PGConfig{Hub: h, Auth: newFakeAuth()})
	cases := map[string]string{
		`{"event":"*","filter":"id=eq.1"}`:                                     "No subscription params provided",
		`{"event":"*","schema":"public","table":"todos","select":"id"}`:        "Error parsing `select` params",
		`{"event":"*","schema":"public","table":"*","select":["id"]}`:          "Column selection is not supported for wildcard subscriptions",
		`{"event":"*","schema":"public","table":"todos","filter":"id=foo.1"}`:  "Error parsing `filter` params",
		`{"event":"*","schema":"public","table":"nope"}`:                       "Unable to subscribe to changes with given parameters. Please check Realtime is enabled",
		`{"event":"*","schema":"public","table":"todos","filter":"nope=eq.1"}`: "invalid column for filter nope",
		`{"event":"*","schema":"public","table":"todos","select":["zzz"]}`:     "invalid column for select zzz",
		`{"event":"*","schema":"public","table":"todos","filter":"id=eq.abc"}`: "invalid input syntax",
	}
	for raw, want := range cases {
		s, _ := newSub(h, "realtime:e", &Identity{Role: "service_role", Key: "svc"})
		err := p.Activate(s, p.Bind([]json.RawMessage{json.RawMessage(raw)}))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", raw, err, want)
		}
		if s.pg.Load() != nil {
			t.Errorf("%s: refused binding was activated", raw)
		}
	}
}

func TestEncodeChangeImages(t *testing.T) {
	full := *todosRel
	full.ReplicaIdentity = 'f'
	info := &TableInfo{PrimaryKey: []string{"id"}, RLS: false}
	rlsInfo := &TableInfo{PrimaryKey: []string{"id"}, RLS: true}
	all := []int{0, 1, 2, 3}
	oldFull := []decoder.Value{intVal(1), val("o"), val("old title"), val("big")}
	cases := []struct {
		name string
		ch   decoder.Change
		info *TableInfo
		want string // record and old_record as JSON
	}{
		{"update default identity: key from new image", decoder.Change{Kind: decoder.Update, Rel: todosRel, New: []decoder.Value{intVal(1), val("o"), val("t"), val("s")}}, info,
			`"record":{"id":1,"owner":"o","title":"t","secret":"s"},"old_record":{"id":1}`},
		{"update full identity with unchanged toast", decoder.Change{Kind: decoder.Update, Rel: &full, New: []decoder.Value{intVal(1), val("o"), val("new"), {Absent: true}}, Old: oldFull}, info,
			`"record":{"id":1,"owner":"o","title":"new","secret":"big"},"old_record":{"id":1,"owner":"o","title":"old title","secret":"big"}`},
		{"update default identity, toast absent", decoder.Change{Kind: decoder.Update, Rel: todosRel, New: []decoder.Value{intVal(1), val("o"), val("t"), {Absent: true}}}, info,
			`"record":{"id":1,"owner":"o","title":"t"},"old_record":{"id":1}`},
		{"delete full identity without RLS", decoder.Change{Kind: decoder.Delete, Rel: &full, Old: oldFull}, info,
			`"old_record":{"id":1,"owner":"o","title":"old title","secret":"big"}`},
		{"delete full identity with RLS: key only", decoder.Change{Kind: decoder.Delete, Rel: &full, Old: oldFull}, rlsInfo,
			`"old_record":{"id":1}`},
	}
	for _, tc := range cases {
		got := string(encodeChange(&tc.ch, all, tc.info, 1<<20))
		if !strings.Contains(got, tc.want) || !json.Valid([]byte(got)) {
			t.Errorf("%s:\n got %s\nwant …%s…", tc.name, got, tc.want)
		}
	}
	// Over the size limit: values over 64 bytes are dropped and 413 reported.
	big := strings.Repeat("x", 200)
	ch := decoder.Change{Kind: decoder.Insert, Rel: todosRel, New: []decoder.Value{intVal(1), val("o"), val(big), val(big)}}
	got := string(encodeChange(&ch, all, info, 300))
	if !strings.Contains(got, `"record":{"id":1,"owner":"o"}`) || !strings.Contains(got, `"errors":["Error 413: Payload Too Large"]`) {
		t.Fatalf("413: %s", got)
	}
}

func TestReplayWindow(t *testing.T) {
	w := newReplayWindow(3, 1<<60, 0)
	batch := []decoder.Change{insertTodo(1, "", ""), insertTodo(2, "", ""), insertTodo(3, "", ""), insertTodo(4, "", "")}
	w.add(batch[:2], cursorsOf(batch[:2]))
	if _, _, gap := w.since(Cursor{Pos: 100}); !gap {
		t.Fatal("no base and cursor before the first change seen: gap expected")
	}
	if chs, _, gap := w.since(Cursor{Pos: 101}); gap || len(chs) != 1 {
		t.Fatalf("cursor at the first change: gap %v, %d changes", gap, len(chs))
	}
	w.add(batch[2:], cursorsOf(batch[2:])) // evicts change 1 (pos 101)
	chs, curs, gap := w.since(Cursor{Pos: 102})
	if gap || len(chs) != 2 || curs[0].Pos != 103 || curs[1].Pos != 104 {
		t.Fatalf("since 102: gap %v, %v", gap, curs)
	}
	if _, _, gap := w.since(Cursor{Pos: 100}); !gap {
		t.Fatal("cursor before an evicted change must report a gap")
	}
	w2 := newReplayWindow(10, 1<<60, 0)
	w2.base, w2.hasBase = 150, true
	if _, _, gap := w2.since(Cursor{Pos: 150}); gap {
		t.Fatal("cursor at the base: no gap")
	}
	if _, _, gap := w2.since(Cursor{Pos: 149}); !gap {
		t.Fatal("cursor before the base: gap")
	}
	c, err := ParseCursor(Cursor{Pos: 42, Seq: 3}.String())
	if err != nil || c != (Cursor{42, 3}) {
		t.Fatalf("cursor round trip %v %v", c, err)
	}
	if _, err := ParseCursor("x-1"); err == nil {
		t.Fatal("bad cursor parsed")
	}
}

func TestLikeMatch(t *testing.T) {
	for _, tc := range []struct {
		p, n string
		ok   bool
	}{{"*", "a", true}, {"todo*", "todos", true}, {"todo*", "tod", false}, {"*s", "todos", true}, {"a*c*e", "abcde", true}, {"a*c*e", "abde", false}, {"x", "x", true}} {
		if likeMatch(tc.p, tc.n) != tc.ok {
			t.Errorf("likeMatch(%q,%q) != %v", tc.p, tc.n, tc.ok)
		}
	}
}

// BenchmarkProcessRLS fans batches of 100 inserts out to 1,000 subscribers
// of 100 users on an owner-only table (RLS answered in memory), so it
// measures the pipeline's own cost per delivery.
func BenchmarkProcessRLS(b *testing.B) {
	h := NewHub(HubConfig{})
	auth := newFakeAuth()
	owners := map[string]string{}
	auth.visible = ownerVisible(owners)
	p := NewPGChanges(PGConfig{Hub: h, Auth: auth, ReplayCount: -1})
	for u := 0; u < 100; u++ {
		for i := 0; i < 10; i++ {
			s, _ := newSub(h, "realtime:u"+strconv.Itoa(u)+"-"+strconv.Itoa(i), user("u"+strconv.Itoa(u)))
			s.Writer = nopWriter{}
			h.Subscribe(s)
			var err error
			if err = p.Activate(s, p.Bind([]json.RawMessage{json.RawMessage(`{"event":"*","schema":"public","table":"todos"}`)})); err != nil {
				b.Fatal(err)
			}
		}
	}
	batch := make([]decoder.Change, 100)
	for i := range batch {
		owner := "u" + strconv.Itoa(i%100)
		batch[i] = insertTodo(i, owner, "t")
		owners[strconv.Itoa(i)] = owner
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.Process(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(batch)*10*b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
