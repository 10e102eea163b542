package channels

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openrealtime/realtime/decoder"
)

// recWriter records frames; it never blocks.
type recWriter struct {
	mu     sync.Mutex
	frames []Frame
	limit  int // 0: unlimited
}

func (w *recWriter) Enqueue(f Frame) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.limit > 0 && len(w.frames) >= w.limit {
		return false
	}
	w.frames = append(w.frames, f)
	return true
}

func (w *recWriter) all() []Frame {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Frame(nil), w.frames...)
}

// testEncoder frames messages as "kind|topic|payload" text.
type testEncoder struct{ name string }

func (e *testEncoder) EncodeBroadcast(topic string, b *Broadcast) (Frame, bool) {
	if b.Binary && e.name == "json-only" {
		return Frame{}, false
	}
	return Frame{Data: []byte("broadcast|" + topic + "|" + b.Event + "|" + string(b.Payload))}, true
}
func (e *testEncoder) EncodePresenceDiff(topic string, diff []byte) Frame {
	return Frame{Data: []byte("diff|" + topic + "|" + string(diff))}
}
func (e *testEncoder) EncodePostgresChange(topic string, ids []int64, data []byte, c Cursor) Frame {
	idb, _ := json.Marshal(ids)
	return Frame{Data: []byte("change|" + topic + "|" + string(idb) + "|" + string(data))}
}
func (e *testEncoder) EncodeSystem(topic string, payload []byte) Frame {
	return Frame{Data: []byte("system|" + topic + "|" + string(payload))}
}

var encA, encB = &testEncoder{"a"}, &testEncoder{"json-only"}

func newSub(h *Hub, topic string, id *Identity) (*Subscription, *recWriter) {
	w := &recWriter{}
	s := &Subscription{ID: h.NextID(), Topic: topic, Name: topic[len("realtime:"):], Writer: w, Encoder: encA, PresenceKey: "k" + strconv.Itoa(int(h.ids.Load()))}
	if id == nil {
		id = &Identity{Role: "anon", Key: `{"role":"anon"}`}
	}
	s.SetIdentity(id)
	return s, w
}

// fakeAuth is an Authorizer over in-memory tables; Visible lets a row
// through when the identity's Sub equals the row's "owner" key prefix.
type fakeAuth struct {
	tables     map[string]*TableInfo
	selectable map[string]map[string]bool // role → columns
	visible    func(id *Identity, keys [][]string) ([]bool, error)
	// imageVisible, when set, judges each image instead of visible.
	imageVisible func(id *Identity, rel *decoder.Relation, img []decoder.Value) bool
	calls        atomic.Int64 // CheckRows calls
	groups       atomic.Int64 // RowChecks answered
}

func (a *fakeAuth) Table(ctx context.Context, schema, table string) (*TableInfo, error) {
	if t, ok := a.tables[schema+"."+table]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("%w: %s.%s", ErrNoTable, schema, table)
}
func (a *fakeAuth) SelectableColumns(ctx context.Context, role, schema, table string) (map[string]bool, error) {
	if c, ok := a.selectable[role]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrNoRole, role)
}

// CheckRows answers each check with visible, given the images' primary-key
// text (the first column of the table's key), or imageVisible when set.
func (a *fakeAuth) CheckRows(ctx context.Context, checks []*RowCheck) error {
	a.calls.Add(1)
	a.groups.Add(int64(len(checks)))
	for _, ck := range checks {
		if a.imageVisible != nil {
			ck.Visible = make([]bool, len(ck.Images))
			for i, img := range ck.Images {
				ck.Visible[i] = a.imageVisible(ck.ID, ck.Rel, img)
			}
			continue
		}
		info := a.tables[ck.Rel.Schema+"."+ck.Rel.Table]
		keys := make([][]string, len(ck.Images))
		for i, img := range ck.Images {
			for _, name := range info.PrimaryKey {
				keys[i] = append(keys[i], img[ck.Rel.ColumnIndex(name)].Text)
			}
		}
		vis, err := a.visible(ck.ID, keys)
		if errors.Is(err, ErrTransient) {
			return err
		}
		ck.Visible, ck.Err = vis, err
	}
	return nil
}
func (a *fakeAuth) PublishedTables(ctx context.Context) ([]TableRef, error) {
	var out []TableRef
	for _, t := range a.tables {
		out = append(out, TableRef{t.Schema, t.Table})
	}
	return out, nil
}
func (a *fakeAuth) Invalidate(schema, table string) {}

// todosRel is a relation like the demo table: id (key), owner, title, secret.
var todosRel = &decoder.Relation{OID: 1, Schema: "public", Table: "todos", ReplicaIdentity: 'd', Columns: []decoder.Column{
	{Name: "id", Type: "int8", Key: true}, {Name: "owner", Type: "text"}, {Name: "title", Type: "text"}, {Name: "secret", Type: "text"},
}}

func val(s string) decoder.Value {
	b, _ := json.Marshal(s)
	return decoder.Value{Text: s, JSON: b}
}

func intVal(n int) decoder.Value {
	s := strconv.Itoa(n)
	return decoder.Value{Text: s, JSON: []byte(s)}
}

func insertTodo(id int, owner, title string) decoder.Change {
	return decoder.Change{Kind: decoder.Insert, Rel: todosRel, CommitTime: time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC), Position: uint64(100 + id),
		New: []decoder.Value{intVal(id), val(owner), val(title), val("s3cret")}}
}

func newFakeAuth() *fakeAuth {
	all := map[string]bool{"id": true, "owner": true, "title": true, "secret": true}
	noSecret := map[string]bool{"id": true, "owner": true, "title": true}
	return &fakeAuth{
		tables: map[string]*TableInfo{"public.todos": {Schema: "public", Table: "todos", RLS: true, PrimaryKey: []string{"id"},
			Columns: []TableColumn{{"id", "int8"}, {"owner", "text"}, {"title", "text"}, {"secret", "text"}}}},
		selectable: map[string]map[string]bool{"service_role": all, "authenticated": noSecret, "anon": {"title": true}},
	}
}
