package rls

import "testing"

// splitJobs cuts groups into consecutive parts of about equal rows, keeps
// every group exactly once and in order, and does not split small batches.
func TestSplitJobs(t *testing.T) {
	mk := func(sizes ...int) []*sqlJob {
		js := make([]*sqlJob, len(sizes))
		for i, n := range sizes {
			js[i] = &sqlJob{rows: make([]int, n)}
		}
		return js
	}
	for _, tc := range []struct {
		sizes []int
		n     int
		want  []int // rows per part
	}{
		{[]int{10, 10}, 2, []int{20}},                   // below minSplitRows
		{[]int{300}, 2, []int{300}},                     // one group
		{[]int{100, 100, 100, 100}, 2, []int{200, 200}}, // even
		{[]int{500, 10, 10}, 2, []int{500, 20}},         // one heavy group
		{[]int{10, 10, 500}, 2, []int{20, 500}},         // heavy group last
		{[]int{100, 100, 100, 100}, 1, []int{400}},      // no parallelism
		{[]int{100, 100, 100}, 4, []int{100, 100, 100}}, // fewer groups than n
	} {
		js := mk(tc.sizes...)
		parts := splitJobs(js, tc.n)
		var got []int
		k := 0
		for _, p := range parts {
			rows := 0
			for _, j := range p {
				if js[k] != j {
					t.Fatalf("%v/%d: group %d out of order or repeated", tc.sizes, tc.n, k)
				}
				k++
				rows += len(j.rows)
			}
			got = append(got, rows)
		}
		if k != len(js) {
			t.Fatalf("%v/%d: %d of %d groups in parts", tc.sizes, tc.n, k, len(js))
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%v/%d: parts %v, want %v", tc.sizes, tc.n, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("%v/%d: parts %v, want %v", tc.sizes, tc.n, got, tc.want)
			}
		}
	}
}
