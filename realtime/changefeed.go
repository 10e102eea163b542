package realtime

import (
	"context"
	"encoding/json"

	"github.com/openrealtime/realtime/channels"
)

// ChangeFeed validates and activates postgres_changes bindings. It is
// implemented by the wiring in cmd on top of channels and a change source.
type ChangeFeed interface {
	// Bind parses the join's postgres_changes array into bindings with ids
	// (synchronously, without IO). It returns the bindings in request order.
	Bind(raw []json.RawMessage) []*channels.Binding
	// Activate validates the bindings against the database under sub's
	// identity and starts delivering matching changes to sub. It may block on
	// IO; the transport calls it on its own goroutine. A nil error means the
	// subscription is live ("Subscribed to PostgreSQL").
	Activate(sub *channels.Subscription, bindings []*channels.Binding) error
	// Deactivate stops delivery to sub (before a rebind on a new token).
	Deactivate(sub *channels.Subscription)
	// Replay returns the frames sub missed after the cursor, RLS-checked,
	// and whether the replay window could not cover the whole gap; when
	// maxBytes > 0 it considers only the newest changes that fit in it
	// (the older ones are a gap).
	Replay(ctx context.Context, sub *channels.Subscription, after channels.Cursor, maxBytes int) ([]channels.Frame, bool, error)
}
