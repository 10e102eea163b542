package policy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openrealtime/realtime/internal/demo"
	"github.com/openrealtime/realtime/internal/pgcluster"
	"github.com/openrealtime/realtime/internal/realtimeschema"
)

// Many concurrent read probes, batched into shared transactions, each get
// their own answer: per-user membership, presence probed only when asked,
// a policy error failing only its own probe, and no probe row left behind
// (docs/protocol.md §9.2).
func TestConcurrentReadProbes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	pool, err := pgxpool.New(ctx, c.URL(""))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, demo.SchemaSQL); err != nil {
		t.Fatal(err)
	}
	if _, err := realtimeschema.Migrate(ctx, pool, realtimeschema.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		`CREATE TABLE members (room text, user_id uuid)`,
		`GRANT SELECT ON members TO authenticated`,
		`CREATE POLICY r ON realtime.messages FOR SELECT TO authenticated USING (
		   realtime.topic() <> 'boom' OR 1 / (length(realtime.topic()) - 4) = 1)`,
		`CREATE POLICY m ON realtime.messages AS RESTRICTIVE FOR SELECT TO authenticated USING (
		   EXISTS (SELECT 1 FROM members WHERE user_id = auth.uid() AND room = realtime.topic())
		   AND (extension = 'broadcast' OR realtime.topic() LIKE 'pres-%'))`,
	} {
		if _, err := pool.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	user := func(i int) string { return fmt.Sprintf("00000000-0000-0000-0000-%012d", i) }
	// user i is a member of room-i and pres-i; everybody of boom.
	for i := range 50 {
		if _, err := pool.Exec(ctx, `INSERT INTO members VALUES ($1, $3), ($2, $3), ('boom', $3)`, fmt.Sprintf("room-%d", i), fmt.Sprintf("pres-%d", i), user(i)); err != nil {
			t.Fatal(err)
		}
	}
	p := NewProber(pool)
	type probe struct {
		user     int
		topic    string
		presence bool
		wantB    bool
		wantP    bool
		wantErr  bool
	}
	var probes []probe
	for i := range 50 {
		probes = append(probes,
			probe{user: i, topic: fmt.Sprintf("room-%d", i), presence: true, wantB: true},
			probe{user: i, topic: fmt.Sprintf("room-%d", (i+1)%50)},
			probe{user: i, topic: fmt.Sprintf("pres-%d", i), presence: true, wantB: true, wantP: true},
			probe{user: i, topic: fmt.Sprintf("pres-%d", i), wantB: true},
		)
		if i%10 == 0 {
			probes = append(probes, probe{user: i, topic: "boom", wantErr: true})
		}
	}
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan string, len(probes))
		for _, pr := range probes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				claims := fmt.Sprintf(`{"sub":%q,"role":"authenticated"}`, user(pr.user))
				b, pp, err := p.Read(ctx, &Request{Role: "authenticated", Sub: user(pr.user), Claims: []byte(claims), Topic: pr.topic, Presence: pr.presence})
				switch {
				case pr.wantErr:
					if !errors.Is(err, ErrPolicy) {
						errs <- fmt.Sprintf("user %d %s: err %v, want a policy error", pr.user, pr.topic, err)
					}
				case err != nil:
					errs <- fmt.Sprintf("user %d %s: %v", pr.user, pr.topic, err)
				case b != pr.wantB || pp != pr.wantP:
					errs <- fmt.Sprintf("user %d %s presence=%v: got %v/%v, want %v/%v", pr.user, pr.topic, pr.presence, b, pp, pr.wantB, pr.wantP)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Errorf("round %d: %s", round, e)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM realtime.messages`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("probe rows left: %d (%v)", n, err)
	}
}
