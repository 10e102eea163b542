package realtime

import "time"

// Load is a project's figures that count against its limits across the
// nodes of a cluster (docs/cluster.md "Cluster-wide limits").
type Load struct {
	// Clients are open WebSocket connections and SSE streams.
	Clients int
	// EventsPerSecond is the rate of admitted client broadcasts.
	EventsPerSecond float64
	// PresenceEventsPerSecond is the rate of admitted tracks and untracks.
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
		EventsPerSecond:         s.eventRate.rate(now),
		PresenceEventsPerSecond: s.presenceRate.rate(now),
		JoinsPerPeriod:          s.joinRate.mean(now),
	}
}

// SetRemoteLoad installs fn, the sum of the other nodes' last reported
// figures for this project; the limits then count them too: the
// connection cap (Clients), events/s, presence events/s and the project
// join counter. fn is called on admission paths and must be cheap. nil
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
