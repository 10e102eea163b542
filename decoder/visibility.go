package decoder

import (
	"context"
	"sync"
)

// Visibility wait on demand (docs/protocol.md §4.5). Row checks judge the
// committed image from the WAL, so a batch normally goes to the sink at
// once. Only a consumer that must read the live row (an unchanged TOASTed
// value a policy reads) needs the batch's transactions to be visible to new
// snapshots first; it calls [AwaitVisible] with the sink's context, which
// runs the source's wait at most once per batch.

// visibilityKey is the context key of a batch's *visibility.
type visibilityKey struct{}

// visibility is one batch's wait: run once, on demand. once guards err.
type visibility struct {
	once sync.Once
	wait func() error
	err  error
}

// WithVisibility returns ctx carrying wait as the visibility wait of the
// batch the sink is given with it (sources, and tests of live-row readers).
func WithVisibility(ctx context.Context, wait func() error) context.Context {
	return context.WithValue(ctx, visibilityKey{}, &visibility{wait: wait})
}

// AwaitVisible waits, when ctx is a sink's context, until every transaction
// of the batch being delivered is visible to new snapshots, so that a query
// reading the live rows finds them; it runs the wait at most once per batch
// and returns its error (the same one to every caller). With any other
// context it returns nil at once.
func AwaitVisible(ctx context.Context) error {
	v, _ := ctx.Value(visibilityKey{}).(*visibility)
	if v == nil {
		return nil
	}
	v.once.Do(func() { v.err = v.wait() })
	return v.err
}
