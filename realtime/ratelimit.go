package realtime

import "time"

// rateWindow is a sliding-window counter: at most limit events per window.
// It is not safe for concurrent use; each owner guards its own.
type rateWindow struct {
	times []time.Time // event times inside the window, oldest first
}

// allow records an event at now and reports whether it is within the limit.
// A refused event is not recorded.
func (w *rateWindow) allow(now time.Time, limit int, window time.Duration) bool {
	cut := now.Add(-window)
	i := 0
	for i < len(w.times) && !w.times[i].After(cut) {
		i++
	}
	if i > 0 {
		w.times = append(w.times[:0], w.times[i:]...)
	}
	if len(w.times) >= limit {
		return false
	}
	w.times = append(w.times, now)
	return true
}
