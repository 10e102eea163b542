package rls

import (
	"context"
	"testing"
	"time"
)

// A value used in the last quarter of its ttl is returned at once and
// refreshed in the background; the next use gets the refreshed value
// without a load of its own. Before that window nothing is reloaded.
func TestTTLCacheRefreshAhead(t *testing.T) {
	ctx := context.Background()
	tc := newTTLCache[string, int]()
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	loads := 0 // written by the loads, read under tc.mu or after a get
	release := make(chan struct{})
	load := func(context.Context) (int, error) {
		loads++
		if loads == 2 {
			<-release // the background refresh blocks until the test lets it go
		}
		return loads, nil
	}
	get := func() int {
		t.Helper()
		v, err := tc.get(ctx, "k", clock.now, time.Minute, load)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := get(); v != 1 {
		t.Fatalf("first get = %d, want 1", v)
	}
	clock.advance(40 * time.Second)
	if v := get(); v != 1 || loads != 1 {
		t.Fatalf("at 40 s: %d after %d loads, want 1 after 1", v, loads)
	}
	clock.advance(10 * time.Second)
	// The refresh is blocked: the caller still gets the cached value at once.
	if v := get(); v != 1 {
		t.Fatalf("at 50 s: %d, want the cached 1", v)
	}
	close(release)
	waitFor(t, func() bool {
		tc.mu.Lock()
		defer tc.mu.Unlock()
		return tc.flights["k"] == nil
	})
	tc.mu.Lock()
	refreshed := loads == 2
	tc.mu.Unlock()
	if !refreshed {
		t.Fatal("no background refresh in the last quarter of the ttl")
	}
	clock.advance(15 * time.Second) // past the first value's expiry
	if v := get(); v != 2 {
		t.Fatalf("after the refresh: %d, want 2", v)
	}
	tc.mu.Lock()
	n := loads
	tc.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d loads, want 2", n)
	}
}
