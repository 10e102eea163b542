package main

import (
	"sync/atomic"
	"time"
)

const histShards = 16

// recorder collects receipts from every subscriber reader. Its methods are
// safe for concurrent use; readers pick a shard by their index so that the
// atomic counters of one histogram are not shared by every goroutine.
type recorder struct {
	sendLat   [histShards]Histogram // send timestamp → receipt
	commitLat [histShards]Histogram // commit_timestamp → receipt (database loads)

	base     atomic.Int64 // Unix ns of the load start; 0 before
	timeline [maxTimelineSeconds]atomic.Int64
	lastRecv atomic.Int64
	unparsed atomic.Int64 // deliveries whose marker could not be read
	closes   atomic.Int64 // phx_close / phx_error / stream ends seen during the run
}

// start fixes the time origin of the timeline.
func (r *recorder) start(t time.Time) { r.base.Store(t.UnixNano()) }

// receipt records one delivery on shard s received at now. It returns
// whether the tracker counted it as a first, expected copy.
func (r *recorder) receipt(s int, tr *Tracker, mk marker, now time.Time) bool {
	ns := now.UnixNano()
	sh := s % histShards
	fresh := tr.Receive(mk.m)
	if fresh {
		r.sendLat[sh].Record(time.Duration(ns - mk.sentNS))
		if !mk.commit.IsZero() {
			r.commitLat[sh].Record(now.Sub(mk.commit))
		}
		if b := r.base.Load(); b > 0 && ns >= b {
			if sec := int((ns - b) / int64(time.Second)); sec < len(r.timeline) {
				r.timeline[sec].Add(1)
			}
		}
	}
	for {
		l := r.lastRecv.Load()
		if ns <= l || r.lastRecv.CompareAndSwap(l, ns) {
			break
		}
	}
	return fresh
}

// merged returns the merged send and commit latency histograms.
func (r *recorder) merged() (send, commit *Histogram) {
	send, commit = &Histogram{}, &Histogram{}
	for i := range r.sendLat {
		send.Merge(&r.sendLat[i])
		commit.Merge(&r.commitLat[i])
	}
	return send, commit
}

// deliveries is the number of fresh receipts so far.
func (r *recorder) deliveries() int64 {
	var n int64
	for i := range r.sendLat {
		n += int64(r.sendLat[i].Count())
	}
	return n
}

// timelineUpTo returns the per-second delivery counts of the first secs seconds.
func (r *recorder) timelineUpTo(secs int) []int64 {
	secs = min(max(secs, 0), len(r.timeline))
	out := make([]int64, secs)
	for i := range out {
		out[i] = r.timeline[i].Load()
	}
	return out
}
