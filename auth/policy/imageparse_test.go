package policy

import (
	"testing"
	"time"
)

// wholeRowRef says yes for every way a policy can name the probe row as a
// whole and no for column references and other tables' names.
func TestWholeRowRef(t *testing.T) {
	for expr, want := range map[string]bool{
		"(topic = realtime.topic())":                  false,
		"(messages.topic = realtime.topic())":         false,
		`("messages".topic = 'x'::text)`:              false,
		"(public.messages.id IS NULL)":                false,
		"(EXISTS ( SELECT 1 FROM public.messages m))": false,
		"(messages_archive.id IS NULL)":               false,
		"t.f(messages.*)":                             true,
		"t.f(messages)":                               true,
		"(to_jsonb(messages) ? 'x'::text)":            true,
		"messages":                                    true,
		"(messages.)":                                 true,
	} {
		if got := wholeRowRef(expr); got != want {
			t.Errorf("wholeRowRef(%q) = %v, want %v", expr, got, want)
		}
	}
}

// Partition bounds as pg_get_expr prints them: day ranges, open ends and
// a default partition decide whether a probe time has a partition.
func TestPartitionCovers(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	day := func(d int) time.Time { return time.Date(2026, 12, d, 0, 0, 0, 0, time.UTC) }
	for _, c := range []struct {
		name string
		ps   partitionSet
		want bool
	}{
		{"none", partitionSet{}, false},
		{"today", partitionSet{ranges: []timeRange{{day(5), day(6)}, {day(6), day(7)}}}, true},
		{"yesterday only", partitionSet{ranges: []timeRange{{day(5), day(6)}}}, false},
		{"ends at the probe time", partitionSet{ranges: []timeRange{{day(6), at}}}, false},
		{"starts at the probe time", partitionSet{ranges: []timeRange{{at, day(7)}}}, true},
		{"open start", partitionSet{ranges: []timeRange{{time.Time{}, day(7)}}}, true},
		{"default", partitionSet{def: true}, true},
	} {
		if got := c.ps.covers(at); got != c.want {
			t.Errorf("%s: covers = %v, want %v", c.name, got, c.want)
		}
	}
	for bound, want := range map[string]bool{
		"FOR VALUES FROM ('2026-12-06 00:00:00') TO ('2026-12-07 00:00:00')":           true,
		"FOR VALUES FROM (MINVALUE) TO ('2026-12-07 00:00:00.5')":                      true,
		"FOR VALUES FROM ('infinity') TO (MAXVALUE)":                                   false,
		"FOR VALUES FROM ('2026-12-06 00:00:00', 'a') TO ('2026-12-07 00:00:00', 'b')": false,
	} {
		m := rangeBoundRe.FindStringSubmatch(bound)
		ok := m != nil
		if ok {
			_, ok1 := parseBound(m[1])
			_, ok2 := parseBound(m[2])
			ok = ok1 && ok2
		}
		if ok != want {
			t.Errorf("bound %q readable = %v, want %v", bound, ok, want)
		}
	}
}
