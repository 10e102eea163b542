package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/cluster"
	"github.com/openrealtime/realtime/realtime"
	"github.com/openrealtime/realtime/realtime/admin"
)

// stackExtras are the settings of a project's stack that have no flag.
type stackExtras struct {
	// ref is the project's ref (its cluster namespace); "" means the
	// flag-configured project's, --project-ref.
	ref string
	// jwks is a JWK Set document given inline (a project's jwt_jwks).
	jwks []byte
	// privateOnly refuses public joins.
	privateOnly bool
	// presenceLimit per presenceWindow is the per-channel presence push
	// limit; zero keeps the server's default.
	presenceLimit  int
	presenceWindow time.Duration
	// eventsPerSecond and presenceEventsPerSecond are the project-wide
	// rates (docs/projects.md "Limits"); zero is unlimited.
	eventsPerSecond         int
	presenceEventsPerSecond int
	// joinsPerSecond is the project-wide join rate (docs/projects.md
	// "Limits"); zero is unlimited.
	joinsPerSecond int
}

// stack is one project's complete service: JWT verifier, channel hub,
// change source and RLS checker (feed), realtime server and inspector.
// Nothing in it is shared with another project's stack.
type stack struct {
	verifier *auth.Verifier
	hub      *channels.Hub
	srv      *realtime.Server
	insp     *admin.Inspector
	feed     *pgFeed         // nil without a database
	broker   *cluster.Broker // nil on a single node
	unreport func()          // unregisters the project's heartbeat report
	opts     *options
	rcfg     realtime.Config
	ctx      context.Context // ends when the stack is closed
	cancel   context.CancelFunc
}

// newStack builds and starts a stack from o (the project's options) and x.
// The stack's goroutines live until close.
func newStack(ctx context.Context, o *options, x stackExtras, log *slog.Logger) (*stack, error) {
	vcfg := auth.Config{Secret: []byte(o.JWTSecret), JWKS: x.jwks}
	if o.JWKSFile != "" {
		data, err := os.ReadFile(o.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("read JWKS file: %w", err)
		}
		vcfg.JWKS = data
	}
	verifier, err := auth.NewVerifier(vcfg)
	if err != nil {
		return nil, err
	}
	hcfg := channels.HubConfig{Logger: log}
	var broker *cluster.Broker
	if o.cluster != nil && o.DBURL != "" && o.Source != "logical" {
		return nil, fmt.Errorf("a cluster needs source logical: the nodes share the replication slot (docs/cluster.md)")
	}
	ref := x.ref
	if ref == "" {
		ref = o.ProjectRef
	}
	if o.cluster != nil {
		if broker, err = o.cluster.Broker(ref); err != nil {
			return nil, err
		}
		hcfg.Broker = broker
	}
	hub := channels.NewHub(hcfg)
	rcfg := realtime.Config{
		Verifier:             verifier,
		Hub:                  hub,
		Logger:               log,
		PrivateOnly:          x.privateOnly,
		MaxChannelsPerClient: o.MaxChannelsPerClient,
		MaxPayloadBytes:      o.MaxPayloadBytes,
		MaxJoinsPerSecond:    o.MaxJoinsPerSecond,
		MaxQueueBytes:        o.MaxQueueBytes,
		IdleTimeout:          o.IdleTimeout,
		WriteTimeout:         o.WriteTimeout,
		DisableIOUring:       !o.IOUring,
		SSEHeartbeat:         o.SSEHeartbeat,
		MaxConnections:       connectionCap(o.MaxConnections, log),
		MaxConnectionsPerIP:  o.MaxConnectionsPerIP,
		MaxResumesPerUser:    o.MaxResumesPerUser,
		PresenceLimit:        x.presenceLimit,
		PresenceWindow:       x.presenceWindow,
		// Project-wide rates (docs/projects.md "Limits").
		MaxEventsPerSecond:         x.eventsPerSecond,
		MaxPresenceEventsPerSecond: x.presenceEventsPerSecond,
		MaxProjectJoinsPerSecond:   x.joinsPerSecond,
	}
	insp := admin.New(admin.Config{Hub: hub, Verifier: verifier, Token: o.AdminToken, Logger: log, MaxBroadcastBytes: o.MaxPayloadBytes, NodeName: o.NodeName})
	if o.cluster != nil {
		insp.SetCluster(clusterState(o.cluster))
	}
	sctx, cancel := context.WithCancel(ctx)
	feed, err := startFeed(sctx, o, ref, log, hub, verifier, insp.ObserveDelivery)
	if err != nil {
		cancel()
		if broker != nil {
			broker.Close()
		}
		return nil, err
	}
	if feed != nil {
		rcfg.Changes = feed
		rcfg.ReplicationReady = func() <-chan struct{} { return feed.streaming }
		if feed.prober != nil {
			rcfg.Private = feed.prober
		}
		insp.SetSource(feed.status)
		insp.SetRLS(rlsStatsOf(feed.Checker, o.RLSVerify))
	}
	srv := realtime.New(rcfg)
	unreport := func() {}
	if broker != nil {
		cp := &clusterProject{node: o.cluster, ref: broker.Namespace(), srv: srv, feed: feed, broker: broker, countClients: x.ref != ""}
		unreport = cp.wire(insp)
	}
	srv.Handle("/admin/", insp.Handler())
	if feed != nil && feed.bridge != nil {
		feed.bridge.Mount(srv.Handle)
	}
	return &stack{verifier: verifier, hub: hub, srv: srv, insp: insp, feed: feed, broker: broker, unreport: unreport, opts: o, rcfg: rcfg, ctx: sctx, cancel: cancel}, nil
}

// streaming returns a channel closed once the change source streams; it
// is closed at once without a database.
func (s *stack) streaming() <-chan struct{} {
	if s.feed == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return s.feed.streaming
}

// close disconnects every client (a restart close frame, so clients
// reconnect), then stops the change source and the stack's goroutines.
func (s *stack) close(ctx context.Context, log *slog.Logger) {
	if err := s.srv.Shutdown(ctx); err != nil {
		log.Warn("closing connections", "err", err)
	}
	s.insp.Close()
	if s.feed != nil {
		s.feed.Close()
	}
	if s.broker != nil {
		s.unreport()
		s.broker.Close()
	}
	s.cancel()
}
