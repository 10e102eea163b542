package realtime

import (
	"sync"
	"time"
)

// Texts of the project-wide rate limits (docs/protocol.md §7.6).
const (
	msgTooManyMessages = "Too many messages per second"
	msgTooManyPresence = "Too many presence messages per second"
	msgRESTRateLimit   = "You have exceeded your rate limit"
)

// Limits are the limits that may change while the server runs (a
// project's limits changed through the management API or its file,
// docs/projects.md "Limits"). Zero MaxEventsPerSecond or
// MaxPresenceEventsPerSecond means unlimited.
type Limits struct {
	// MaxConnections caps open WebSocket connections and SSE streams.
	MaxConnections int
	// MaxChannelsPerClient caps the channels one connection joins.
	MaxChannelsPerClient int
	// MaxJoinsPerSecond is a connection's join rate.
	MaxJoinsPerSecond float64
	// MaxPayloadBytes caps a broadcast or presence payload.
	MaxPayloadBytes int
	// PresenceLimit presence pushes per PresenceWindow, per channel.
	PresenceLimit  int
	PresenceWindow time.Duration
	// MaxEventsPerSecond is the server-wide rate of broadcasts received
	// from clients (WebSocket pushes and REST messages).
	MaxEventsPerSecond int
	// MaxPresenceEventsPerSecond is the server-wide rate of track and untrack.
	MaxPresenceEventsPerSecond int
	// MaxProjectJoinsPerSecond is the server-wide join rate (joinRate).
	MaxProjectJoinsPerSecond int
}

// limitsOf returns the Limits of a defaulted cfg.
func limitsOf(cfg *Config) Limits {
	return Limits{
		MaxConnections:             cfg.MaxConnections,
		MaxChannelsPerClient:       cfg.MaxChannelsPerClient,
		MaxJoinsPerSecond:          cfg.MaxJoinsPerSecond,
		MaxPayloadBytes:            cfg.MaxPayloadBytes,
		PresenceLimit:              cfg.PresenceLimit,
		PresenceWindow:             cfg.PresenceWindow,
		MaxEventsPerSecond:         cfg.MaxEventsPerSecond,
		MaxPresenceEventsPerSecond: cfg.MaxPresenceEventsPerSecond,
		MaxProjectJoinsPerSecond:   cfg.MaxProjectJoinsPerSecond,
	}
}

// SetLimits changes the server's limits at once, for connections already
// open too. Zero or negative fields keep their current value, except the
// three project-wide rates, where zero means unlimited. A changed
// MaxProjectJoinsPerSecond starts its counter afresh. A payload limit above the
// frame limit fixed at New is bounded by that frame limit.
func (s *Server) SetLimits(l Limits) {
	cur := *s.limits()
	keep := func(v *int, old int) {
		if *v <= 0 {
			*v = old
		}
	}
	keep(&l.MaxConnections, cur.MaxConnections)
	keep(&l.MaxChannelsPerClient, cur.MaxChannelsPerClient)
	keep(&l.MaxPayloadBytes, cur.MaxPayloadBytes)
	keep(&l.PresenceLimit, cur.PresenceLimit)
	if l.MaxJoinsPerSecond <= 0 {
		l.MaxJoinsPerSecond = cur.MaxJoinsPerSecond
	}
	if l.PresenceWindow <= 0 {
		l.PresenceWindow = cur.PresenceWindow
	}
	l.MaxEventsPerSecond = max(l.MaxEventsPerSecond, 0)
	l.MaxPresenceEventsPerSecond = max(l.MaxPresenceEventsPerSecond, 0)
	l.MaxProjectJoinsPerSecond = max(l.MaxProjectJoinsPerSecond, 0)
	if l.MaxProjectJoinsPerSecond != cur.MaxProjectJoinsPerSecond {
		s.joinRate.reset()
	}
	s.lim.Store(&l)
	s.log.Info("limits changed", "max_connections", l.MaxConnections, "max_channels_per_client", l.MaxChannelsPerClient,
		"max_joins_per_second", l.MaxJoinsPerSecond, "max_payload_bytes", l.MaxPayloadBytes,
		"max_events_per_second", l.MaxEventsPerSecond, "max_presence_events_per_second", l.MaxPresenceEventsPerSecond,
		"max_project_joins_per_second", l.MaxProjectJoinsPerSecond)
}

// limits returns the limits in force; never nil after New.
func (s *Server) limits() *Limits { return s.lim.Load() }

// allowEvents counts n client broadcasts against MaxEventsPerSecond.
// On a node of a cluster the limit is shared with the other nodes in
// proportion to their reported demand (docs/cluster.md "Cluster-wide
// limits").
func (s *Server) allowEvents(n int) bool {
	limit := s.limits().MaxEventsPerSecond
	if limit <= 0 {
		return true
	}
	return s.eventRate.allow(time.Now(), n, limit, s.remoteLoad().EventsPerSecond)
}

// allowProjectJoin counts one join against MaxProjectJoinsPerSecond; a
// refusal is a limit hit, and the moment the limit trips is logged.
func (s *Server) allowProjectJoin() bool {
	ok, tripped := s.joinRate.allow(time.Now(), s.limits().MaxProjectJoinsPerSecond)
	if tripped {
		s.log.Warn(reasonTooManyJoins, "limit", s.limits().MaxProjectJoinsPerSecond)
	}
	if !ok {
		s.metrics.limitHit()
	}
	return ok
}

// joinsBlocked reports whether the project's join rate limit refuses
// joins now; a refused connection is a limit hit.
func (s *Server) joinsBlocked() bool {
	if !s.joinRate.blocked(time.Now(), s.limits().MaxProjectJoinsPerSecond) {
		return false
	}
	s.metrics.limitHit()
	return true
}

// allowPresenceEvent counts one track or untrack against
// MaxPresenceEventsPerSecond.
func (s *Server) allowPresenceEvent() bool {
	limit := s.limits().MaxPresenceEventsPerSecond
	if limit <= 0 {
		return true
	}
	return s.presenceRate.allow(time.Now(), 1, limit, s.remoteLoad().PresenceEventsPerSecond)
}

// secondRate estimates a rolling one-second rate from the count of the
// current second and the previous one, weighted by how much of the
// previous second still lies inside the last 1 s. It keeps two such
// rates: the events admitted (the limit's) and the events asked for,
// admitted or refused (the node's demand, which splits the limit between
// the nodes of a cluster).
type secondRate struct {
	mu    sync.Mutex // guards start, cur, prev, asked, askedPrev
	start time.Time  // beginning of the current second
	cur   int        // events admitted in the current second
	prev  int        // events admitted in the previous second
	// asked and askedPrev count the events asked for in the current and
	// previous second.
	asked, askedPrev int
}

// allow admits n events at now when the rolling rate stays within this
// node's share of limit; limit <= 0 admits everything. others is the other
// nodes' demand (0 on a single node): the share is limit × this node's
// demand / the cluster's demand (docs/cluster.md "Cluster-wide limits").
// Refused events count in the demand only.
func (r *secondRate) allow(now time.Time, n, limit int, others float64) bool {
	if limit <= 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.advanceLocked(now)
	frac := 1 - float64(now.Sub(r.start))/float64(time.Second)
	r.asked += n
	budget := float64(limit)
	if others > 0 {
		mine := float64(r.askedPrev)*frac + float64(r.asked)
		budget *= mine / (mine + others)
	}
	if float64(r.prev)*frac+float64(r.cur+n) > budget {
		return false
	}
	r.cur += n
	return true
}

// demand is the rolling rate at now of the events asked for, admitted or
// refused: this node's figure for the other nodes of a cluster.
func (r *secondRate) demand(now time.Time) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.advanceLocked(now)
	frac := 1 - float64(now.Sub(r.start))/float64(time.Second)
	return float64(r.askedPrev)*frac + float64(r.asked)
}

// advanceLocked moves the current second to the one holding now. r.mu is
// held on entry.
func (r *secondRate) advanceLocked(now time.Time) {
	switch el := now.Sub(r.start); {
	case el >= 2*time.Second || el < 0:
		r.start, r.cur, r.prev, r.asked, r.askedPrev = now, 0, 0, 0, 0
	case el >= time.Second:
		r.start, r.prev, r.cur, r.askedPrev, r.asked = r.start.Add(time.Second), r.cur, 0, r.asked, 0
	}
}

// Stats are a server's figures for an overview of projects.
type Stats struct {
	// Connections are the open WebSocket connections and SSE streams.
	Connections int
	// LimitHits counts events refused by the events/s and presence events/s
	// limits, and joins and connections refused by the joins/s limit.
	LimitHits int64
}

// Stats returns the server's current figures.
func (s *Server) Stats() Stats {
	ws, sse := s.sessionCounts()
	return Stats{Connections: ws + sse, LimitHits: s.metrics.limitHits.Load()}
}
