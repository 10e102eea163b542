package main

import (
	"math"
	"testing"
	"time"
)

func TestBucketRoundTrip(t *testing.T) {
	// Every value lands in a bucket whose bounds contain it, bucket indexes
	// never decrease with the value, and the relative width stays small.
	prev := -1
	for _, v := range []uint64{0, 1, 63, 64, 65, 100, 127, 128, 1000, 4095, 4096, 99_999, 1 << 30, 1<<45 + 12345} {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucket of %d (%d) is below the previous one (%d)", v, i, prev)
		}
		prev = i
		lo, hi := bucketBounds(i)
		if v < lo || v >= hi {
			t.Fatalf("value %d in bucket %d with bounds [%d,%d)", v, i, lo, hi)
		}
		if v >= histLinear && float64(hi-lo)/float64(lo) > 1.0/32+1e-9 {
			t.Fatalf("bucket %d [%d,%d) is wider than 1/32 of its start", i, lo, hi)
		}
	}
	if i := bucketOf(math.MaxUint64); i != histBuckets-1 {
		t.Fatalf("huge value in bucket %d, want the last (%d)", i, histBuckets-1)
	}
}

func TestQuantilesOfUniformValues(t *testing.T) {
	var h Histogram
	for ms := 1; ms <= 1000; ms++ { // 1..1000 ms, once each
		h.Record(time.Duration(ms) * time.Millisecond)
	}
	s := h.Summary()
	check := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want)/want > 0.035 {
			t.Fatalf("%s = %.2f ms, want %.0f ms ± 3.5%%", name, got, want)
		}
	}
	check("p50", s.P50MS, 500)
	check("p95", s.P95MS, 950)
	check("p99", s.P99MS, 990)
	if s.MaxMS != 1000 || s.Count != 1000 {
		t.Fatalf("max %.3f count %d, want 1000 and 1000", s.MaxMS, s.Count)
	}
	check("mean", s.MeanMS, 500.5)
}

func TestQuantileNeverExceedsMax(t *testing.T) {
	var h Histogram
	h.Record(70 * time.Microsecond) // bucket [70,72): its midpoint is above 70
	if q := h.Quantile(1); q != 70 {
		t.Fatalf("p100 = %v µs, want the exact max 70", q)
	}
}

func TestNegativeAndEmpty(t *testing.T) {
	var h Histogram
	if s := h.Summary(); s != (LatencySummary{}) {
		t.Fatalf("empty summary %+v", s)
	}
	h.Record(-time.Second)
	if s := h.Summary(); s.Count != 1 || s.MaxMS != 0 {
		t.Fatalf("negative latency recorded as %+v, want one zero", s)
	}
}

func TestMerge(t *testing.T) {
	var a, b Histogram
	for i := 0; i < 100; i++ {
		a.Record(time.Millisecond)
		b.Record(10 * time.Millisecond)
	}
	b.Record(time.Second)
	a.Merge(&b)
	s := a.Summary()
	if s.Count != 201 || s.MaxMS != 1000 {
		t.Fatalf("merged count %d max %.1f, want 201 and 1000", s.Count, s.MaxMS)
	}
	if s.P50MS < 9.5 || s.P50MS > 10.5 { // rank 101 is the first 10 ms value
		t.Fatalf("merged p50 %.2f ms, want about 10", s.P50MS)
	}
}
