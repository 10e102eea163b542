package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram is a log-linear latency histogram in microseconds: exact below
// 64 µs, then 32 buckets per power of two (relative error under 3.2 %).
// Record is safe for concurrent use (atomic counters); Snapshot may run
// concurrently with Record but then sees a moving target.
type Histogram struct {
	buckets [histBuckets]atomic.Uint64
	count   atomic.Uint64
	sumUS   atomic.Uint64
	maxUS   atomic.Uint64
}

const (
	histLinear   = 64 // exact buckets for 0..63 µs
	histSubBits  = 5  // 32 sub-buckets per octave
	histOctaves  = 40 // up to 2^46 µs, far beyond any bounded run
	histBuckets  = histLinear + histOctaves<<histSubBits
	histFirstExp = 6 // log2(histLinear)
)

// bucketOf maps a value in µs to its bucket index.
func bucketOf(us uint64) int {
	if us < histLinear {
		return int(us)
	}
	e := bits.Len64(us) - 1 // >= 6
	if e-histFirstExp >= histOctaves {
		return histBuckets - 1
	}
	sub := (us >> (e - histSubBits)) & (1<<histSubBits - 1)
	return histLinear + (e-histFirstExp)<<histSubBits + int(sub)
}

// bucketBounds returns the inclusive lower and exclusive upper value of a bucket.
func bucketBounds(i int) (lo, hi uint64) {
	if i < histLinear {
		return uint64(i), uint64(i) + 1
	}
	i -= histLinear
	e := i>>histSubBits + histFirstExp
	sub := uint64(i & (1<<histSubBits - 1))
	width := uint64(1) << (e - histSubBits)
	lo = uint64(1)<<e + sub*width
	return lo, lo + width
}

// Record adds one latency. Negative durations (clock skew between a sender
// timestamp and the receiver) are recorded as zero.
func (h *Histogram) Record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.buckets[bucketOf(us)].Add(1)
	h.count.Add(1)
	h.sumUS.Add(us)
	for {
		m := h.maxUS.Load()
		if us <= m || h.maxUS.CompareAndSwap(m, us) {
			break
		}
	}
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// Merge adds every value of o into h. Not atomic as a whole.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.buckets {
		if n := o.buckets[i].Load(); n > 0 {
			h.buckets[i].Add(n)
		}
	}
	h.count.Add(o.count.Load())
	h.sumUS.Add(o.sumUS.Load())
	for {
		m, om := h.maxUS.Load(), o.maxUS.Load()
		if om <= m || h.maxUS.CompareAndSwap(m, om) {
			break
		}
	}
}

// LatencySummary is what the report prints for one histogram, in milliseconds.
type LatencySummary struct {
	Count  uint64  `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P95MS  float64 `json:"p95_ms"`
	P99MS  float64 `json:"p99_ms"`
	MaxMS  float64 `json:"max_ms"`
}

// Quantile returns the value at quantile q (0..1) in µs: the midpoint of
// the bucket holding the rank ceil(q·count), capped at the exact maximum.
// It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) float64 {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := min(max(uint64(math.Ceil(q*float64(n))), 1), n)
	var seen uint64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			lo, hi := bucketBounds(i)
			v := float64(lo) + float64(hi-lo-1)/2
			if m := float64(h.maxUS.Load()); v > m {
				v = m
			}
			return v
		}
	}
	return float64(h.maxUS.Load())
}

// Summary returns count, mean and p50/p95/p99/max in milliseconds.
func (h *Histogram) Summary() LatencySummary {
	n := h.count.Load()
	if n == 0 {
		return LatencySummary{}
	}
	return LatencySummary{
		Count:  n,
		MeanMS: float64(h.sumUS.Load()) / float64(n) / 1000,
		P50MS:  h.Quantile(0.50) / 1000,
		P95MS:  h.Quantile(0.95) / 1000,
		P99MS:  h.Quantile(0.99) / 1000,
		MaxMS:  float64(h.maxUS.Load()) / 1000,
	}
}
