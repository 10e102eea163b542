package realtime

import (
	"log/slog"
	"time"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
)

// Config configures a Server. Zero limits take the defaults below.
type Config struct {
	// Verifier checks every JWT (apikey, access_token, REST bearer). Required.
	Verifier *auth.Verifier
	// Hub is the channel core. Required.
	Hub *channels.Hub
	// Changes serves postgres_changes bindings; nil answers them with a
	// system error and keeps the channel.
	Changes ChangeFeed
	// Private evaluates private channel policies; nil lets only
	// service_role join private channels.
	Private PrivateAuthorizer
	// ReplicationReady returns a channel closed once the change source
	// streams (config.broadcast.replication_ready); nil never is.
	ReplicationReady func() <-chan struct{}
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// PrivateOnly refuses public channel joins (a project's private_only,
	// docs/projects.md).
	PrivateOnly bool

	// MaxChannelsPerClient limits joined channels per connection (default 100).
	MaxChannelsPerClient int
	// MaxPayloadBytes limits a broadcast or presence payload (default 256 KiB).
	MaxPayloadBytes int
	// MaxJoinsPerSecond is the refill rate of a connection's join token
	// bucket, whose burst is MaxChannelsPerClient (default 100).
	MaxJoinsPerSecond float64
	// MaxConnections caps open WebSocket connections and SSE streams
	// together (default 10,000; the wiring derives one from RLIMIT_NOFILE).
	MaxConnections int
	// MaxConnectionsPerIP caps them per client address; 0 means no cap.
	MaxConnectionsPerIP int
	// MaxResumesPerUser caps concurrent SSE resumes of one identity
	// (default 4); MaxResumes caps those running at once in the whole
	// process (default 2), the rest wait their turn.
	MaxResumesPerUser int
	MaxResumes        int
	// ResumeTimeout bounds the work of one SSE resume (default 10 s);
	// past it the stream opens with a gap notice.
	ResumeTimeout time.Duration
	// MaxQueueBytes is a connection's outgoing byte budget (default 8 MiB).
	MaxQueueBytes int
	// MaxFrameBytes is the largest inbound WebSocket message (default
	// twice MaxPayloadBytes plus 64 KiB, at least 1 MiB): a larger one is
	// refused from its frame header, before its payload is read
	// (docs/operations.md "Hostile clients").
	MaxFrameBytes int64
	// MaxBodyBytes is the largest POST /api/broadcast body (default 5,000,000).
	MaxBodyBytes int64
	// WriteTimeout bounds one socket write (default 10 s).
	WriteTimeout time.Duration
	// DisableIOUring makes every write at once its own system call instead
	// of gathering a fan-out's writes in one io_uring submission
	// (docs/protocol.md §1, "Batched writes").
	DisableIOUring bool
	// IdleTimeout closes a socket that received nothing for this long (default 60 s).
	IdleTimeout time.Duration
	// PresenceLimit is how many presence pushes a channel may make per
	// PresenceWindow (defaults 5 per 30 s, as Supabase).
	PresenceLimit  int
	PresenceWindow time.Duration
	// SSEHeartbeat is the interval of SSE comment heartbeats (default 15 s).
	SSEHeartbeat time.Duration
	// MaxEventsPerSecond caps the rate of broadcasts received from clients,
	// server-wide (0: unlimited; docs/protocol.md §7.6).
	MaxEventsPerSecond int
	// MaxPresenceEventsPerSecond caps track and untrack, server-wide (0: unlimited).
	MaxPresenceEventsPerSecond int
	// MaxProjectJoinsPerSecond is the server-wide join rate limit, Supabase's
	// tenant max_joins_per_second (0: none; docs/projects.md "Limits"). The
	// per-connection bucket of MaxJoinsPerSecond applies as well.
	MaxProjectJoinsPerSecond int
}

func (c *Config) setDefaults() {
	if c.MaxChannelsPerClient <= 0 {
		c.MaxChannelsPerClient = 100
	}
	if c.MaxPayloadBytes <= 0 {
		c.MaxPayloadBytes = 256 * 1024
	}
	if c.MaxJoinsPerSecond <= 0 {
		c.MaxJoinsPerSecond = 100
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = 10000
	}
	if c.MaxConnectionsPerIP < 0 {
		c.MaxConnectionsPerIP = 0
	}
	if c.MaxResumesPerUser <= 0 {
		c.MaxResumesPerUser = 4
	}
	if c.MaxResumes <= 0 {
		c.MaxResumes = 2
	}
	if c.ResumeTimeout <= 0 {
		c.ResumeTimeout = 10 * time.Second
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = 8 << 20
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = max(1<<20, 2*int64(c.MaxPayloadBytes)+64<<10)
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 5_000_000
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.PresenceLimit <= 0 {
		c.PresenceLimit = 5
	}
	if c.PresenceWindow <= 0 {
		c.PresenceWindow = 30 * time.Second
	}
	if c.SSEHeartbeat <= 0 {
		c.SSEHeartbeat = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}
