package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openrealtime/realtime/internal/pgcluster"
)

// BenchmarkReadProbeCPU measures the CPU time one read probe costs
// PostgreSQL (its backends, from /proc) and this process, for the insert
// and the image probe, with the membership policy of the join benchmark
// (docs/benchmarks.md "Private joins with a membership policy"): each
// iteration is 1 000 probes through a batcher of 4 workers, all at once
// (batches of up to 128) or one after another (batches of one).
// CPU time rather than wall time, so a busy machine changes it little.
func BenchmarkReadProbeCPU(b *testing.B) {
	c, pool := newProbeCluster(b)
	exec(b, pool, imageSetupSQL)
	exec(b, pool, `DROP POLICY members_read ON realtime.messages; DROP POLICY header_read ON realtime.messages;
CREATE POLICY m ON realtime.messages FOR SELECT TO authenticated USING (
  EXISTS (SELECT 1 FROM t.rooms r WHERE r.user_id = auth.uid() AND r.room = realtime.topic()))`)
	exec(b, pool, `INSERT INTO t.rooms SELECT u, 'room-' || g, false
FROM (SELECT gen_random_uuid() AS u FROM generate_series(1, 1000)) x, generate_series(0, 9) g`)
	rows, err := pool.Query(context.Background(), `SELECT DISTINCT user_id::text FROM t.rooms`)
	if err != nil {
		b.Fatal(err)
	}
	users, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	exec(b, pool, "ALTER TABLE t.rooms ADD PRIMARY KEY (user_id, room); ANALYZE t.rooms")
	reqs := make([]*Request, 1000)
	for i := range reqs {
		u := users[i]
		reqs[i] = &Request{Role: "authenticated", Sub: u, Topic: fmt.Sprintf("room-%d", i%10), Presence: true,
			Claims: json.RawMessage(fmt.Sprintf(`{"sub":%q,"role":"authenticated"}`, u))}
	}
	for _, bench := range []struct {
		mode string
		conc int
	}{{"insert", 1000}, {"image", 1000}, {"insert", 1}, {"image", 1}} {
		mode := bench.mode
		b.Run(fmt.Sprintf("%s/concurrent=%d", mode, bench.conc), func(b *testing.B) {
			p := NewBatchingProber(pool, 4)
			if mode == "insert" {
				p.image = nil
			}
			ctx := context.Background()
			run := func() {
				var wg sync.WaitGroup
				sem := make(chan struct{}, bench.conc)
				for _, r := range reqs {
					wg.Add(1)
					sem <- struct{}{}
					go func() {
						defer wg.Done()
						defer func() { <-sem }()
						if ok, _, err := p.Read(ctx, r); err != nil || !ok {
							b.Errorf("probe %s: %v %v", describe(r), ok, err)
						}
					}()
				}
				wg.Wait()
			}
			run() // prepare statements, load the catalog
			pg0, self0 := clusterCPU(b, c), selfCPU()
			im0, in0 := ReadProbePaths()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run()
			}
			b.StopTimer()
			n := float64(b.N * len(reqs))
			b.ReportMetric(float64((clusterCPU(b, c)-pg0).Microseconds())/n, "pg-µs/probe")
			b.ReportMetric(float64((selfCPU()-self0).Microseconds())/n, "go-µs/probe")
			b.ReportMetric(0, "ns/op")
			im, in := ReadProbePaths()
			b.ReportMetric(float64(im-im0)/n, "imaged/probe")
			b.ReportMetric(float64(in-in0)/n, "inserted/probe")
		})
	}
}

// clusterCPU is the user+system CPU time of the cluster's postmaster and
// its children so far.
func clusterCPU(t testing.TB, c *pgcluster.Cluster) time.Duration {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(c.DataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pm := strings.SplitN(string(raw), "\n", 2)[0]
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var ticks int64
	for _, d := range dirs {
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// f[1] is the parent pid, f[11] and f[12] utime and stime.
		if d.Name() != pm && f[1] != pm {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ = 100
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
