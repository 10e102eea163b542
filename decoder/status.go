package decoder

import (
	"sync"
	"sync/atomic"
)

// statusBox holds a source's Status and its confirmed position. Its
// methods are safe for concurrent use.
type statusBox struct {
	confirmed atomic.Uint64 // newest position confirmed (delivered)

	mu sync.Mutex // guards st
	st Status
}

// snapshot returns the status with the confirmed position and the lag
// (ServerPosition - ConfirmedPosition, never negative) filled in.
func (b *statusBox) snapshot() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.st
	st.ConfirmedPosition = b.confirmed.Load()
	st.LagBytes = 0
	if st.ServerPosition > st.ConfirmedPosition {
		st.LagBytes = int64(st.ServerPosition - st.ConfirmedPosition)
	}
	return st
}

// update changes the status under the lock.
func (b *statusBox) update(f func(st *Status)) {
	b.mu.Lock()
	f(&b.st)
	b.mu.Unlock()
}
