package channels

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/openrealtime/realtime/decoder"
)

// ownerOfImage grants an image whose "owner" column equals the identity's sub.
func ownerOfImage(id *Identity, rel *decoder.Relation, img []decoder.Value) bool {
	i := rel.ColumnIndex("owner")
	return i >= 0 && !img[i].Null && !img[i].Absent && img[i].Text == id.Sub
}

// fullTodosRel is todosRel with REPLICA IDENTITY FULL.
var fullTodosRel = &decoder.Relation{OID: 2, Schema: "public", Table: "todos", ReplicaIdentity: 'f', Columns: todosRel.Columns}

// The decision reads the committed image: an UPDATE that hands bob's row
// to alice is delivered to alice (her row now) and not to bob, whatever the
// live table holds; and the change is judged on its own image, not looked
// up by key.
func TestRowCheckJudgesTheImage(t *testing.T) {
	h := NewHub(HubConfig{})
	auth := newFakeAuth()
	auth.imageVisible = ownerOfImage
	p := NewPGChanges(PGConfig{Hub: h, Auth: auth})
	alice, aw := newSub(h, "realtime:a", user("alice"))
	bob, bw := newSub(h, "realtime:b", user("bob"))
	for _, s := range []*Subscription{alice, bob} {
		h.Subscribe(s)
		activate(t, p, s, `{"event":"*","schema":"public","table":"todos"}`)
	}
	ins := insertTodo(7, "bob", "bob's private text")
	upd := decoder.Change{Kind: decoder.Update, Rel: todosRel, CommitTime: ins.CommitTime, Position: ins.Position,
		New: []decoder.Value{intVal(7), val("alice"), val("now alice's"), val("s")}}
	if err := p.Process(context.Background(), []decoder.Change{ins, upd}); err != nil {
		t.Fatal(err)
	}
	af, bf := aw.all(), bw.all()
	if len(af) != 1 || len(bf) != 1 {
		t.Fatalf("alice got %d frames, bob %d; want 1 each", len(af), len(bf))
	}
	if _, d := changeData(t, af[0]); d["type"] != "UPDATE" || d["record"].(map[string]any)["title"] != "now alice's" {
		t.Fatalf("alice: %v", d)
	}
	if _, d := changeData(t, bf[0]); d["type"] != "INSERT" {
		t.Fatalf("bob: %v", d)
	}
	// An unchanged TOASTed value (absent in the new tuple) is taken from a
	// full old tuple for the check.
	toast := decoder.Change{Kind: decoder.Update, Rel: fullTodosRel, CommitTime: ins.CommitTime, Position: ins.Position + 1,
		New: []decoder.Value{intVal(8), {Absent: true}, val("t"), val("s")},
		Old: []decoder.Value{intVal(8), val("alice"), val("t0"), val("s")}}
	if err := p.Process(context.Background(), []decoder.Change{toast}); err != nil {
		t.Fatal(err)
	}
	if n := len(aw.all()); n != 2 {
		t.Fatalf("alice got %d frames after the TOAST update, want 2", n)
	}
}

// On a REPLICA IDENTITY FULL table with RLS, a DELETE reaches only those
// who could see the old row, and filters run only for them: guessing a
// hidden column's value through a filter learns nothing.
func TestFullDeleteFilterIsNoOracle(t *testing.T) {
	h := NewHub(HubConfig{})
	auth := newFakeAuth()
	auth.imageVisible = ownerOfImage
	p := NewPGChanges(PGConfig{Hub: h, Auth: auth})
	mallory, mw := newSub(h, "realtime:m", user("mallory"))
	bob, bw := newSub(h, "realtime:b", user("bob"))
	h.Subscribe(mallory)
	h.Subscribe(bob)
	activate(t, p, mallory, `{"event":"DELETE","schema":"public","table":"todos","filter":"title=eq.secret plan"}`)
	activate(t, p, bob, `{"event":"DELETE","schema":"public","table":"todos","filter":"title=eq.secret plan"}`)
	del := decoder.Change{Kind: decoder.Delete, Rel: fullTodosRel, Position: 300,
		Old: []decoder.Value{intVal(9), val("bob"), val("secret plan"), val("s")}}
	if err := p.Process(context.Background(), []decoder.Change{del}); err != nil {
		t.Fatal(err)
	}
	if n := len(mw.all()); n != 0 {
		t.Fatalf("mallory got %d frames for bob's hidden row", n)
	}
	if mallory.Dropped(DropFilter) != 0 {
		t.Fatal("the filter ran on a row mallory cannot see")
	}
	if n := len(bw.all()); n != 1 {
		t.Fatalf("bob got %d frames, want 1", n)
	}
	// The filter still applies to those who may see the row.
	miss := del
	miss.Old = []decoder.Value{intVal(10), val("bob"), val("other"), val("s")}
	if err := p.Process(context.Background(), []decoder.Change{miss}); err != nil {
		t.Fatal(err)
	}
	if n := len(bw.all()); n != 1 || bob.Dropped(DropFilter) != 1 {
		t.Fatalf("bob: %d frames, %d filter drops; want 1, 1", n, bob.Dropped(DropFilter))
	}
}

// A role without SELECT on any column of a table gets nothing about it,
// not even "Error 401" events or DELETE keys, with a wildcard binding.
func TestNoEventsWithoutTablePrivilege(t *testing.T) {
	h := NewHub(HubConfig{})
	auth := newFakeAuth()
	auth.imageVisible = func(*Identity, *decoder.Relation, []decoder.Value) bool { return true }
	auth.selectable["nobody"] = map[string]bool{}
	p := NewPGChanges(PGConfig{Hub: h, Auth: auth})
	id := &Identity{Role: "nobody", Sub: "x", Claims: json.RawMessage(`{"role":"nobody"}`), Key: `{"role":"nobody"}`}
	s, w := newSub(h, "realtime:n", id)
	h.Subscribe(s)
	activate(t, p, s, `{"event":"*","schema":"*"}`)
	del := decoder.Change{Kind: decoder.Delete, Rel: todosRel, Position: 400, Old: []decoder.Value{intVal(1), {Absent: true}, {Absent: true}, {Absent: true}}}
	if err := p.Process(context.Background(), []decoder.Change{insertTodo(1, "x", "t"), del}); err != nil {
		t.Fatal(err)
	}
	if fs := w.all(); len(fs) != 0 {
		t.Fatalf("got %d frames, first %s", len(fs), fs[0].Data)
	}
}

// select and filter on a column the role may not read are refused with the
// same text as an unknown column; filters on wildcards are refused.
func TestBindingColumnChecks(t *testing.T) {
	h := NewHub(HubConfig{})
	p := NewPGChanges(PGConfig{Hub: h, Auth: newFakeAuth()})
	s, _ := newSub(h, "realtime:x", user("alice"))
	errText := func(raw string) string {
		err := p.Activate(s, p.Bind([]json.RawMessage{json.RawMessage(raw)}))
		if err == nil {
			return ""
		}
		return err.Error()
	}
	hidden := errText(`{"event":"*","schema":"public","table":"todos","select":["secret"]}`)
	unknown := errText(`{"event":"*","schema":"public","table":"todos","select":["nosuch"]}`)
	if hidden == "" || hidden != strings.ReplaceAll(unknown, "nosuch", "secret") {
		t.Fatalf("select: hidden %q, unknown %q", hidden, unknown)
	}
	hidden = errText(`{"event":"*","schema":"public","table":"todos","filter":"secret=eq.x"}`)
	unknown = errText(`{"event":"*","schema":"public","table":"todos","filter":"nosuch=eq.x"}`)
	if hidden == "" || hidden != strings.ReplaceAll(unknown, "nosuch", "secret") {
		t.Fatalf("filter: hidden %q, unknown %q", hidden, unknown)
	}
	if got := errText(`{"event":"*","schema":"public","table":"*","filter":"title=eq.x"}`); got != errWildcardFilter {
		t.Fatalf("wildcard filter: %q", got)
	}
}

// Recheck ends a live binding whose filter or select names a column the
// role can no longer select, with a system error; others stay.
func TestRecheckEndsRevokedBindings(t *testing.T) {
	h := NewHub(HubConfig{})
	auth := newFakeAuth()
	auth.imageVisible = func(*Identity, *decoder.Relation, []decoder.Value) bool { return true }
	p := NewPGChanges(PGConfig{Hub: h, Auth: auth})
	f, fw := newSub(h, "realtime:f", user("alice"))
	plain, pw := newSub(h, "realtime:p", user("alice"))
	h.Subscribe(f)
	h.Subscribe(plain)
	activate(t, p, f, `{"event":"*","schema":"public","table":"todos","filter":"title=eq.t"}`)
	activate(t, p, plain, `{"event":"*","schema":"public","table":"todos"}`)
	if n := p.Recheck(context.Background()); n != 0 {
		t.Fatalf("Recheck ended %d before any change", n)
	}
	auth.selectable["authenticated"] = map[string]bool{"id": true, "owner": true} // REVOKE SELECT (title)
	if n := p.Recheck(context.Background()); n != 1 {
		t.Fatalf("Recheck ended %d, want 1", n)
	}
	fs := fw.all()
	if len(fs) != 1 || !strings.Contains(string(fs[0].Data), `"status":"error"`) || !strings.Contains(string(fs[0].Data), "no longer selectable") {
		t.Fatalf("filtered subscriber got %d frames", len(fs))
	}
	if err := p.Process(context.Background(), []decoder.Change{insertTodo(1, "alice", "t")}); err != nil {
		t.Fatal(err)
	}
	if n := len(fw.all()); n != 1 {
		t.Fatalf("ended binding still delivers (%d frames)", n)
	}
	if n := len(pw.all()); n != 1 {
		t.Fatalf("plain binding got %d frames, want 1", n)
	}
}

// The replay window is bounded by bytes as well as count and age.
func TestReplayWindowBytes(t *testing.T) {
	one := insertTodo(1, "o", strings.Repeat("x", 1000))
	size := changeSize(&one)
	w := newReplayWindow(1000, 1<<60, 3*size)
	var batch []decoder.Change
	for i := 1; i <= 5; i++ {
		batch = append(batch, insertTodo(i, "o", strings.Repeat("x", 1000)))
	}
	w.add(batch, cursorsOf(batch))
	chs, _, gap := w.since(Cursor{Pos: 100})
	if len(chs) != 3 || !gap {
		t.Fatalf("kept %d changes (gap %v), want 3 and a gap", len(chs), gap)
	}
	if w.bytes > 3*size {
		t.Fatalf("window holds %d bytes, bound %d", w.bytes, 3*size)
	}
}
