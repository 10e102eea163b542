package channels

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openrealtime/realtime/decoder"
)

// A class whose filters take longer than its budget stops receiving the
// rest of the batch (drops with reason fanout_budget, one log line) while
// another class gets every change; the budget starts afresh each batch.
// The slow class is made slow on a fake clock, so nothing depends on the
// machine's speed.
func TestFanoutBudgetIsolatesSlowClass(t *testing.T) {
	h := NewHub(HubConfig{})
	auth := newFakeAuth()
	auth.tables["public.todos"].RLS = false
	var logs bytes.Buffer
	var stats []DeliveryStats
	p := NewPGChanges(PGConfig{Hub: h, Auth: auth, ClassBudget: 100 * time.Millisecond,
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
		OnDelivery: func(st DeliveryStats) { stats = append(stats, st) }})
	var mu sync.Mutex
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }

	slowID := &Identity{Role: "service_role", Sub: "slow", Key: `{"role":"service_role","sub":"slow"}`}
	fastID := &Identity{Role: "service_role", Sub: "fast", Key: `{"role":"service_role","sub":"fast"}`}
	slow, slowW := newSub(h, "realtime:slow", slowID)
	fast, fastW := newSub(h, "realtime:fast", fastID)
	h.Subscribe(slow)
	h.Subscribe(fast)
	activate(t, p, slow, `{"event":"INSERT","schema":"public","table":"todos","filter":"title=like.%t%"}`)
	activate(t, p, fast, `{"event":"INSERT","schema":"public","table":"todos","filter":"title=like.%t%"}`)
	p.beforeFilter = func(c *subscriberClass) {
		if c.id.Sub == "slow" { // each of its filter evaluations takes a second
			mu.Lock()
			clock = clock.Add(time.Second)
			mu.Unlock()
		}
	}

	const n = 10
	batch := func(from int) []decoder.Change {
		var b []decoder.Change
		for i := range n {
			b = append(b, insertTodo(from+i, "o", "title"))
		}
		return b
	}
	for round := range 2 {
		if err := p.Process(context.Background(), batch(round*n)); err != nil {
			t.Fatal(err)
		}
		if got := len(fastW.all()); got != (round+1)*n {
			t.Fatalf("round %d: fast class got %d frames, want %d", round, got, (round+1)*n)
		}
		// The first change was filtered (and delivered) before the budget ran out.
		if got := len(slowW.all()); got != round+1 {
			t.Fatalf("round %d: slow class got %d frames, want %d", round, got, round+1)
		}
		if got := slow.Dropped(DropFanoutBudget); got != int64((round+1)*(n-1)) {
			t.Fatalf("round %d: slow class budget drops %d, want %d", round, got, (round+1)*(n-1))
		}
		if got := fast.Dropped(DropFanoutBudget); got != 0 {
			t.Fatalf("round %d: fast class budget drops %d", round, got)
		}
		if stats[round].OverBudget != 1 {
			t.Fatalf("round %d: OverBudget = %d, want 1", round, stats[round].OverBudget)
		}
	}
	if c := strings.Count(logs.String(), "over its fan-out budget"); c != 1 {
		t.Fatalf("%d log lines within a minute, want 1:\n%s", c, logs.String())
	}
	if DropFanoutBudget.String() != "fanout_budget" {
		t.Fatalf("reason name %q", DropFanoutBudget.String())
	}
}
