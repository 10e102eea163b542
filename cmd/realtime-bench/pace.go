package main

import "time"

// ownedSeq enumerates, in increasing order, the message indexes whose
// residue modulo period is one of residues (sorted, distinct, < period).
// Sender j of S owns the indexes that it alone may send, so S senders
// together produce 0, 1, 2, … without coordination.
type ownedSeq struct {
	period   int64
	residues []int64
	block    int64
	i        int
}

// next returns the next owned index.
func (o *ownedSeq) next() int64 {
	m := o.block*o.period + o.residues[o.i]
	o.i++
	if o.i == len(o.residues) {
		o.i, o.block = 0, o.block+1
	}
	return m
}

// residuesFor returns the residues sender j owns when there are keys keys
// spread over senders senders: k with k % senders == j.
func residuesFor(j, senders, keys int) []int64 {
	var out []int64
	for k := j; k < keys; k += senders {
		out = append(out, int64(k))
	}
	return out
}

// schedule maps a message index to its send time for a constant rate.
type schedule struct {
	start time.Time
	rate  float64 // messages per second
	stop  time.Time
}

// due is the planned send time of message m.
func (s schedule) due(m int64) time.Time {
	return s.start.Add(time.Duration(float64(m) / s.rate * float64(time.Second)))
}

// waitFor sleeps until m is due. It returns false when the schedule's
// hard stop has passed (a sender that cannot keep up stops there).
func (s schedule) waitFor(m int64) bool {
	now := time.Now()
	if now.After(s.stop) {
		return false
	}
	if d := s.due(m).Sub(now); d > 0 {
		time.Sleep(d)
	}
	return true
}
