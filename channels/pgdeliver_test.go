package channels

import (
	"context"
	"runtime"
	"strconv"
	"testing"

	"github.com/openrealtime/realtime/decoder"
)

// A batch large enough to be split over several goroutines still gives
// every subscriber every change it may see exactly once and in batch
// order, and counts every frame once.
func TestProcessSplitFanOutKeepsOrder(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	h := NewHub(HubConfig{})
	auth := newFakeAuth()
	owners := map[string]string{}
	auth.visible = ownerVisible(owners)
	var frames int
	p := NewPGChanges(PGConfig{Hub: h, Auth: auth, OnDelivery: func(s DeliveryStats) { frames += s.Frames }})
	const subs, users, changes = 3 * parallelFrames, 3, 12 // users and rooms (7) coprime and odd: one room's subscribers of one user fall in every part
	var writers []*recWriter
	var subsOf []string
	for i := range subs {
		u := "u" + strconv.Itoa(i%users)
		s, w := newSub(h, "realtime:room"+strconv.Itoa(i%7), user(u))
		h.Subscribe(s)
		activate(t, p, s, `{"event":"INSERT","schema":"public","table":"todos"}`)
		writers = append(writers, w)
		subsOf = append(subsOf, u)
	}
	var batch []decoder.Change
	for c := range changes {
		u := "u" + strconv.Itoa(c%users)
		owners[strconv.Itoa(c+1)] = u
		batch = append(batch, insertTodo(c+1, u, "t"+strconv.Itoa(c)))
	}
	b := p.newBatch(batch, cursorsOf(batch), nil)
	if err := b.match(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.authorize(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.encode()
	if w := b.fanWorkers(); w < 2 {
		t.Fatalf("fanWorkers = %d for %d subscribers, want the fan-out split", w, subs)
	}
	b.release()
	if err := p.Process(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	want := 0
	type envKey struct{ topic, title string }
	built := map[envKey]*byte{} // the envelope's bytes: built once whatever part delivered it
	for i, w := range writers {
		fs := w.all()
		var got []string
		for _, f := range fs {
			_, d := changeData(t, f)
			title := d["record"].(map[string]any)["title"].(string)
			got = append(got, title)
			k := envKey{"realtime:room" + strconv.Itoa(i%7), title}
			if prev, ok := built[k]; ok && prev != &f.Data[0] {
				t.Fatalf("the envelope of %v was built more than once", k)
			}
			built[k] = &f.Data[0]
		}
		var exp []string
		for c := range changes {
			if "u"+strconv.Itoa(c%users) == subsOf[i] {
				exp = append(exp, "t"+strconv.Itoa(c))
			}
		}
		want += len(exp)
		if len(got) != len(exp) {
			t.Fatalf("subscriber %d got %v, want %v", i, got, exp)
		}
		for j := range exp {
			if got[j] != exp[j] {
				t.Fatalf("subscriber %d got %v, want %v in this order", i, got, exp)
			}
		}
	}
	if frames != want {
		t.Fatalf("DeliveryStats counted %d frames, want %d", frames, want)
	}
}
