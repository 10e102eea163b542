package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// changeLog is one subscriber's postgres_changes, in arrival order, and
// its system messages.
type changeLog struct {
	mu      sync.Mutex
	ids     []int64
	at      []time.Time
	systems []string // raw payloads
}

// follow records c's todos inserts (their ids) and system messages until
// c's connection ends.
func follow(t *testing.T, c *wsClient) *changeLog {
	l := &changeLog{}
	go func() {
		for m := range c.frames {
			if m.Event == "system" {
				l.mu.Lock()
				l.systems = append(l.systems, string(m.Payload))
				l.mu.Unlock()
				continue
			}
			if m.Event != "postgres_changes" {
				continue
			}
			_, rec, _ := changeRecord(t, m)
			id, _ := rec["id"].(float64)
			l.mu.Lock()
			l.ids = append(l.ids, int64(id))
			l.at = append(l.at, time.Now())
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *changeLog) snapshot() ([]int64, []time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int64(nil), l.ids...), append([]time.Time(nil), l.at...)
}

// firstNewer is how long after t0 the first change with an id above id
// arrived (-1: none yet).
func (l *changeLog) firstNewer(t0 time.Time, id int64) time.Duration {
	ids, at := l.snapshot()
	for i := range ids {
		if ids[i] > id {
			return at[i].Sub(t0)
		}
	}
	return -1
}

// holder is the index of the node reading the slot, or -1.
func (e *env) holder(t *testing.T, nodes []*clusterNode) int {
	t.Helper()
	var app *string
	err := e.db.QueryRow(context.Background(), `SELECT a.application_name FROM pg_replication_slots s
		JOIN pg_stat_activity a ON a.pid = s.active_pid WHERE s.slot_name = 'supabase_realtime_slot'`).Scan(&app)
	if err != nil || app == nil {
		return -1
	}
	for i := range nodes {
		if *app == fmt.Sprintf("realtime_node-%d", i+1) {
			return i
		}
	}
	return -1
}

// failoverSub is one subscriber of a failover test.
type failoverSub struct {
	node int
	user string
	log  *changeLog
}

// subscribeAll joins, on every node, one todos subscriber per demo user.
func (e *env) subscribeAll(t *testing.T, nodes []*clusterNode) []*failoverSub {
	t.Helper()
	var subs []*failoverSub
	for i, n := range nodes {
		for tok, id := range map[string]string{e.keys.User: e.keys.UserID, e.keys.User2: e.keys.User2ID} {
			c := n.dial(t, e.keys.Anon)
			c.join(fmt.Sprintf("realtime:fo-%d", i), tok, todos)
			subs = append(subs, &failoverSub{node: i, user: id, log: follow(t, c)})
		}
	}
	return subs
}

// insertLoad inserts one todos row per transaction, alternating owners, on
// its own connection until stop is called; stop returns the load's error.
func (e *env) insertLoad(t *testing.T) (stop func() error) {
	t.Helper()
	conn, err := pgxConnect(e.cluster.URL(""))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		owners := []string{e.keys.UserID, e.keys.User2ID}
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := conn.Exec(ctx, "INSERT INTO todos (user_id, title) VALUES ($1, 'load')", owners[i%2]); err != nil && ctx.Err() == nil {
				done <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		done <- nil
	}()
	var once sync.Once
	var result error
	return func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(15 * time.Second):
				result = fmt.Errorf("the load's insert did not return within 15s of its cancellation")
			}
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			conn.Close(cctx)
			ccancel()
		})
		return result
	}
}

// maxTodoID is the newest todos id (0 when empty).
func (e *env) maxTodoID() int64 {
	var id int64
	e.db.QueryRow(context.Background(), "SELECT coalesce(max(id), 0) FROM todos").Scan(&id)
	return id
}

// rowCount is the number of todos rows.
func (e *env) rowCount() int {
	var n int
	e.db.QueryRow(context.Background(), "SELECT count(*) FROM todos").Scan(&n)
	return n
}

// awaitRows waits until the load has written n more rows than now.
func (e *env) awaitMoreRows(t *testing.T, n int) {
	t.Helper()
	target := e.rowCount() + n
	deadline := time.Now().Add(30 * time.Second)
	for e.rowCount() < target {
		if time.Now().After(deadline) {
			t.Fatalf("the load wrote fewer than %d rows in 30s", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkExactlyOnce requires every subscriber not on a node of skip to have
// every change of its rows once, in commit (id) order.
func (e *env) checkExactlyOnce(t *testing.T, subs []*failoverSub, skip ...int) {
	t.Helper()
	want := map[string][]int64{}
	r, err := e.db.Query(context.Background(), "SELECT id, user_id::text FROM todos ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var id int64
		var owner string
		r.Scan(&id, &owner)
		want[owner] = append(want[owner], id)
	}
	r.Close()
	for _, s := range subs {
		if slices.Contains(skip, s.node) {
			continue
		}
		w := want[s.user]
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, _ := s.log.snapshot()
			if len(got) >= len(w) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // a duplicate would arrive now
		got, _ := s.log.snapshot()
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("subscriber on node-%d: %d changes, want %d; first difference: %s", s.node+1, len(got), len(w), firstDiff(got, w))
		}
	}
}

// With a slot per node (--cluster-handoff=false), killing (SIGKILL) one
// node and freezing (SIGSTOP) another under a steady insert load: every
// subscriber still connected gets every change of its rows once, in commit
// order; the frozen node's subscribers too, once it runs again
// (docs/cluster.md "Database changes").
func TestClusterFailover(t *testing.T) {
	e := newEnv(t)
	nodes := e.startCluster(t, 3, "--cluster-handoff=false")
	subs := e.subscribeAll(t, nodes)
	stop := e.insertLoad(t)
	defer stop()
	e.awaitMoreRows(t, 50)

	killedID, killedAt := e.maxTodoID(), time.Now()
	nodes[0].kill9()
	e.awaitMoreRows(t, 50)
	for _, s := range subs[2:] {
		t.Logf("SIGKILL of node-1: a subscriber of node-%d got the first later change %s after it", s.node+1, s.log.firstNewer(killedAt, killedID).Round(time.Millisecond))
	}
	// node-1 comes back with new clients.
	nodes[0].service = e.startService(t, nodes[0].addr, nodes[0].args...)
	nodes[0].awaitReady(t)

	stoppedID, stoppedAt := e.maxTodoID(), time.Now()
	nodes[1].cmd.Process.Signal(syscall.SIGSTOP)
	e.awaitMoreRows(t, 100)
	for _, s := range subs[4:] {
		t.Logf("SIGSTOP of node-2: a subscriber of node-%d got the first later change %s after it", s.node+1, s.log.firstNewer(stoppedAt, stoppedID).Round(time.Millisecond))
	}
	nodes[1].cmd.Process.Signal(syscall.SIGCONT)
	e.awaitMoreRows(t, 50)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	e.checkExactlyOnce(t, subs, 0)
}

// With the change hand-off (a cluster's default), one node reads the
// shared slot and every node's subscribers get every change of their rows
// once, in commit order, through the stream (docs/cluster.md "Change
// hand-off").
func TestClusterHandoff(t *testing.T) {
	e := newEnv(t)
	nodes := e.startCluster(t, 3)
	subs := e.subscribeAll(t, nodes)
	stop := e.insertLoad(t)
	defer stop()
	e.awaitMoreRows(t, 200)
	h := e.holder(t, nodes)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var readers int
	e.db.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_replication WHERE application_name LIKE 'realtime_node-%'").Scan(&readers)
	if h < 0 || readers != 1 {
		t.Fatalf("holder %d, %d nodes reading the slot; want one", h, readers)
	}
	e.checkExactlyOnce(t, subs)
}

// firstDiff describes where two id sequences first differ.
func firstDiff(got, want []int64) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("at %d got %d, want %d (got %v...)", i, got[i], want[i], got[i:min(i+5, len(got))])
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "lengths %d and %d", len(got), len(want))
	return b.String()
}
