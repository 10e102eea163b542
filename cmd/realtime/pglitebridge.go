package main

import (
	"context"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openrealtime/realtime/auth"
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
