package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/decoder"
	"github.com/openrealtime/realtime/realtime/pglitebridge"
)

// bridgeScheme marks a --db-url that names the browser bridge: the
// project's PGlite runs in a browser tab that connects to this service
// (docs/pglite.md, "Browser bridge").
const bridgeScheme = "pglite-bridge:"

// isBridgeURL reports whether a --db-url names the browser bridge.
func isBridgeURL(u string) bool { return strings.HasPrefix(u, bridgeScheme) }

// openBridge returns o.DBURL unchanged, or, for a pglite-bridge:// URL, a
// new browser bridge and the URL of its private socket, which the change
// source dials.
func openBridge(o *options, log *slog.Logger, verifier *auth.Verifier) (string, *pglitebridge.Bridge, error) {
	if !isBridgeURL(o.DBURL) {
		return o.DBURL, nil, nil
	}
	b := pglitebridge.New(pglitebridge.Config{
		Secret: o.PGliteBridgeSecret,
		IsServiceKey: func(token string) bool {
			c, err := verifier.Verify(token)
			return err == nil && c.Role == "service_role"
		},
		Logger: log,
	})
	u, err := b.ListenUnix()
	if err != nil {
		return "", nil, err
	}
	log.Info("waiting for a PGlite browser bridge", "endpoint", pglitebridge.BridgePath, "module", pglitebridge.ModulePath, "secret_set", o.PGliteBridgeSecret != "")
	return u, b, nil
}

// dialBridge makes the pool's connections virtual connections of the
// bridge directly, without the socket hop.
func dialBridge(pcfg *pgxpool.Config, b *pglitebridge.Bridge) {
	pcfg.ConnConfig.DialFunc = b.Dial
	pcfg.ConnConfig.LookupFunc = func(_ context.Context, host string) ([]string, error) { return []string{host}, nil }
}

// redeliveryWindow is how many recently delivered changes the filter
// remembers.
const redeliveryWindow = 1 << 16

// delivered identifies a change as it was fanned out.
type delivered struct {
	at    time.Time
	kind  decoder.Kind
	table string
}

func deliveredOf(c *decoder.Change) delivered {
	d := delivered{at: c.CommitTime, kind: c.Kind}
	if c.Rel != nil {
		d.table = c.Rel.Schema + "." + c.Rel.Table
	}
	return d
}

// redeliveryFilter drops changes this process already fanned out. A tab
// that reloads or closes can lose its last IndexedDB write, which may be
// the source's cursor update: the source then reads the changes after the
// older cursor again. A change is dropped only when the same position
// arrives with the same commit time, table and kind, so a position that a
// rolled-back browser database hands to a different change is delivered.
// Only the source's Run goroutine calls it (docs/pglite.md, "Browser
// bridge").
type redeliveryFilter struct {
	next  decoder.Sink
	seen  map[uint64]delivered
	order []uint64 // positions in seen, oldest first, at most redeliveryWindow
}

func newRedeliveryFilter(next decoder.Sink) *redeliveryFilter {
	return &redeliveryFilter{next: next, seen: make(map[uint64]delivered)}
}

// Process is the filtering decoder.Sink.
func (f *redeliveryFilter) Process(ctx context.Context, batch []decoder.Change) error {
	fresh := batch[:0:0]
	for i := range batch {
		if d, ok := f.seen[batch[i].Position]; ok && d == deliveredOf(&batch[i]) {
			continue
		}
		fresh = append(fresh, batch[i])
	}
	if len(fresh) == 0 {
		return nil
	}
	if err := f.next(ctx, fresh); err != nil {
		return err
	}
	for i := range fresh {
		pos := fresh[i].Position
		if _, ok := f.seen[pos]; !ok {
			f.order = append(f.order, pos)
		}
		f.seen[pos] = deliveredOf(&fresh[i])
	}
	if over := len(f.order) - redeliveryWindow; over > 0 {
		for _, pos := range f.order[:over] {
			delete(f.seen, pos)
		}
		f.order = append(f.order[:0], f.order[over:]...)
	}
	return nil
}
