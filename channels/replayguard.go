package channels

import "sync"

// replayGuard keeps a subscription's replay and live database broadcasts
// apart (docs/protocol.md §9.4): while the replay is read, live ids are
// recorded; afterwards live copies of replayed ids are skipped.
type replayGuard struct {
	mu       sync.Mutex          // guards both sets
	live     map[string]struct{} // ids delivered live so far
	replayed map[string]struct{} // ids sent by the replay
}

// StartReplay makes s record the database broadcasts it receives live until
// FinishReplay. Call it before Hub.Subscribe.
func (s *Subscription) StartReplay() {
	s.replay.Store(&replayGuard{live: map[string]struct{}{}, replayed: map[string]struct{}{}})
}

// FinishReplay takes the ids read for replay and returns those not already
// delivered live, in order; live copies of them are skipped from then on.
func (s *Subscription) FinishReplay(ids []string) (keep []bool) {
	g := s.replay.Load()
	keep = make([]bool, len(ids))
	if g == nil {
		for i := range keep {
			keep[i] = true
		}
		return keep
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, id := range ids {
		if _, ok := g.live[id]; !ok {
			keep[i] = true
			g.replayed[id] = struct{}{}
		}
	}
	g.live = nil
	return keep
}

// replayedLive reports whether a live database broadcast id must be
// skipped for s, recording it while a replay is being read.
func (s *Subscription) replayedLive(id string) bool {
	g := s.replay.Load()
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.replayed[id]; ok {
		return true
	}
	if g.live != nil {
		g.live[id] = struct{}{}
	}
	return false
}
