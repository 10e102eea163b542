package main

import (
	"fmt"
	"math/bits"
	"sync/atomic"
)

// The accounting model. Every generated message has a global index m.
// Message m is addressed to key m % keys (a channel for broadcasts, a user
// for database writes); a subscriber listens to one key, or to every key
// when the configuration makes every subscriber see every message. From
// that the tool knows exactly which messages each subscriber should get.

// Ledger records which message indexes were sent successfully. MarkSent and
// Sent are safe for concurrent use; it has a fixed capacity so a run can
// never grow without bound.
type Ledger struct {
	keys    int
	words   []atomic.Uint64
	perKey  []atomic.Int64
	total   atomic.Int64
	failed  atomic.Int64
	capBits int64
}

// NewLedger returns a ledger for messages 0..capacity-1 spread over keys.
func NewLedger(keys int, capacity int64) (*Ledger, error) {
	if keys <= 0 {
		return nil, fmt.Errorf("ledger: keys must be positive, got %d", keys)
	}
	if capacity <= 0 || capacity > maxMessages {
		return nil, fmt.Errorf("ledger: capacity %d outside 1..%d", capacity, int64(maxMessages))
	}
	return &Ledger{
		keys:    keys,
		words:   make([]atomic.Uint64, (capacity+63)/64),
		perKey:  make([]atomic.Int64, keys),
		capBits: capacity,
	}, nil
}

// Keys is the number of keys messages are spread over.
func (l *Ledger) Keys() int { return l.keys }

// KeyOf returns the key message m is addressed to.
func (l *Ledger) KeyOf(m int64) int { return int(m % int64(l.keys)) }

// MarkSent records that message m left the tool successfully. Marking an
// index twice or out of range is ignored.
func (l *Ledger) MarkSent(m int64) {
	if m < 0 || m >= l.capBits {
		return
	}
	bit := uint64(1) << (m & 63)
	if old := l.words[m>>6].Or(bit); old&bit != 0 {
		return
	}
	l.perKey[l.KeyOf(m)].Add(1)
	l.total.Add(1)
}

// MarkFailed counts a send that the service or database refused.
func (l *Ledger) MarkFailed() { l.failed.Add(1) }

// Sent reports whether message m was marked sent.
func (l *Ledger) Sent(m int64) bool {
	if m < 0 || m >= l.capBits {
		return false
	}
	return l.words[m>>6].Load()&(1<<(m&63)) != 0
}

// SentTo returns how many messages were sent to key (key < 0: to any key).
func (l *Ledger) SentTo(key int) int64 {
	if key < 0 {
		return l.total.Load()
	}
	return l.perKey[key].Load()
}

// Failed is the number of sends that failed.
func (l *Ledger) Failed() int64 { return l.failed.Load() }

// Tracker is one subscriber's receipt record. It is owned by the goroutine
// that reads the subscriber's stream; read its results only after that
// goroutine has finished.
type Tracker struct {
	key        int // -1: listens to every key
	keys       int
	recv       []uint64 // bit per local index
	unique     int64
	dups       int64
	unexpected int64 // messages for another key, or indexes never issued
}

// NewTracker returns a tracker for a subscriber of key (-1 for all keys).
func NewTracker(key, keys int) *Tracker { return &Tracker{key: key, keys: keys} }

// local maps a global index to this subscriber's dense index space.
func (t *Tracker) local(m int64) (int64, bool) {
	if t.key < 0 {
		return m, true
	}
	if int(m%int64(t.keys)) != t.key {
		return 0, false
	}
	return m / int64(t.keys), true
}

// Receive records the receipt of message m and classifies it. It returns
// false when the message was a duplicate or not meant for this subscriber.
func (t *Tracker) Receive(m int64) bool {
	if m < 0 || m >= maxMessages {
		t.unexpected++
		return false
	}
	i, ok := t.local(m)
	if !ok {
		t.unexpected++
		return false
	}
	w := int(i >> 6)
	if w >= len(t.recv) {
		n := max(2*len(t.recv), w+1, 16)
		grown := make([]uint64, n)
		copy(grown, t.recv)
		t.recv = grown
	}
	bit := uint64(1) << (i & 63)
	if t.recv[w]&bit != 0 {
		t.dups++
		return false
	}
	t.recv[w] |= bit
	t.unique++
	return true
}

// Accounting is the delivery balance of a set of subscribers.
type Accounting struct {
	Expected    int64 `json:"expected"`    // sum over subscribers of messages sent to their key
	Delivered   int64 `json:"delivered"`   // distinct expected messages received
	Lost        int64 `json:"lost"`        // expected but never received
	Duplicates  int64 `json:"duplicates"`  // received more than once (extra copies)
	Unexpected  int64 `json:"unexpected"`  // received by a subscriber that should not see them (leaks, misroutes)
	Unconfirmed int64 `json:"unconfirmed"` // received although the send was not confirmed (e.g. timed out)
	LossySubs   int   `json:"subscribers_with_loss"`
	// LostSample lists a few (subscriber, message) pairs that were lost,
	// to help tell a pattern (the first messages, one key, ...).
	LostSample []LostMessage `json:"lost_sample,omitempty"`
}

// LostMessage is one expected delivery that never arrived.
type LostMessage struct {
	Subscriber int   `json:"subscriber"`
	Message    int64 `json:"message"`
}

// lostSampleSize bounds Accounting.LostSample.
const lostSampleSize = 20

// Balance compares what each tracker received with what the ledger sent.
func Balance(l *Ledger, ts []*Tracker) Accounting {
	var a Accounting
	for si, t := range ts {
		if t == nil {
			continue
		}
		exp := l.SentTo(t.key)
		var confirmed int64
		for w, word := range t.recv {
			for word != 0 {
				b := bits.TrailingZeros64(word)
				word &= word - 1
				i := int64(w)<<6 | int64(b)
				m := i
				if t.key >= 0 {
					m = i*int64(t.keys) + int64(t.key)
				}
				if l.Sent(m) {
					confirmed++
				}
			}
		}
		a.Expected += exp
		a.Delivered += confirmed
		a.Lost += exp - confirmed
		if exp > confirmed {
			a.LossySubs++
			if len(a.LostSample) < lostSampleSize {
				a.LostSample = appendLost(a.LostSample, l, t, si)
			}
		}
		a.Duplicates += t.dups
		a.Unexpected += t.unexpected
		a.Unconfirmed += t.unique - confirmed
	}
	return a
}

// appendLost adds the first messages of t's key that were sent but not
// received, up to lostSampleSize entries in total.
func appendLost(out []LostMessage, l *Ledger, t *Tracker, sub int) []LostMessage {
	step, m := int64(1), int64(0)
	if t.key >= 0 {
		step, m = int64(t.keys), int64(t.key)
	}
	for ; m < l.capBits && len(out) < lostSampleSize; m += step {
		if !l.Sent(m) {
			continue
		}
		i, _ := t.local(m)
		w := int(i >> 6)
		if w < len(t.recv) && t.recv[w]&(1<<(i&63)) != 0 {
			continue
		}
		out = append(out, LostMessage{Subscriber: sub, Message: m})
	}
	return out
}
