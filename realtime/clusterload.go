package realtime

import "time"

// Load is a project's figures that count against its limits across the
// nodes of a cluster (docs/cluster.md "Cluster-wide limits").
type Load struct {
	// Clients are open WebSocket connections and SSE streams.
	Clients int
	// EventsPerSecond is the rate of client broadcasts asked for,
	// admitted or refused: the demand that splits MaxEventsPerSecond
	// between the nodes.
	EventsPerSecond float64
	// PresenceEventsPerSecond is the rate of tracks and untracks asked
	// for, admitted or refused.
	PresenceEventsPerSecond float64
	// JoinsPerPeriod is the mean of admitted joins per period of the
	// project's join counter (joins per 5 s).
	JoinsPerPeriod float64
}

// Load returns this server's own figures: what a node reports to the
// others. The rates are 0 while their limit is off (nothing is counted).
func (s *Server) Load() Load {
	now := time.Now()
	s.admission.mu.Lock()
	open := s.admission.open
	s.admission.mu.Unlock()
	return Load{
		Clients:                 open,
		EventsPerSecond:         s.eventRate.demand(now),
		PresenceEventsPerSecond: s.presenceRate.demand(now),
		JoinsPerPeriod:          s.joinRate.mean(now),
	}
}

// SetRemoteLoad installs fn, the sum of the other nodes' last reported
// figures for this project; the limits then count them too: the
// connection cap and the project join counter add them, events/s and
// presence events/s are shared in proportion to the nodes' demand. fn is called on admission paths and must be cheap. nil
// (the default, a single node) counts this server alone.
func (s *Server) SetRemoteLoad(fn func() Load) {
	if fn == nil {
		s.remote.Store(nil)
		s.joinRate.remote.Store(nil)
		return
	}
	joins := func() float64 { return fn().JoinsPerPeriod }
	s.remote.Store(&fn)
	s.joinRate.remote.Store(&joins)
}

// remoteLoad is the other nodes' figures; zero on a single node.
func (s *Server) remoteLoad() Load {
	if f := s.remote.Load(); f != nil {
		return (*f)()
	}
	return Load{}
}
