package pglitetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A server answers through the bridge, keeps its data across a restart on
// the same directory and port, and shares one backend between sockets.
func TestStartRestart(t *testing.T) {
	s := Start(t, Options{MaxConnections: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before restart')"); err != nil {
		t.Fatal(err)
	}
	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if want := "PGlite 0.5.14"; !strings.Contains(version, want) {
		t.Fatalf("version %q, want %s", version, want)
	}
	port := s.Port
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Port != port {
		t.Fatalf("port changed: %d -> %d", port, s.Port)
	}
	conn, err = pgx.Connect(ctx, s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "before restart" {
		t.Fatalf("after restart: %q %v", v, err)
	}
}

// hostNotifier is a bridge module that writes through the host's own
// PGlite API: a notification on host_ch every 20 ms, numbered from 1.
const hostNotifier = `export default async function ({ db }) {
  let i = 0
  const t = setInterval(() => {
    db.query("SELECT pg_notify('host_ch', $1)", [String(++i)]).catch(() => {})
  }, 20)
  return () => clearInterval(t)
}
`

// The bridge relays every notification to every socket that LISTENs on its
// channel, in commit order, whoever committed it: another socket, the
// listener itself, or the host process through db.query. A socket that did
// not LISTEN gets none, and one socket's UNLISTEN does not stop the others'
// notifications although all sockets share one backend.
func TestBridgeRelaysNotifications(t *testing.T) {
	mod := filepath.Join(t.TempDir(), "host.mjs")
	if err := os.WriteFile(mod, []byte(hostNotifier), 0o644); err != nil {
		t.Fatal(err)
	}
	s := Start(t, Options{MaxConnections: 4, Module: mod})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	connect := func(onNote func(*pgconn.PgConn, *pgconn.Notification)) *pgx.Conn {
		cfg, err := pgx.ParseConfig(s.URL())
		if err != nil {
			t.Fatal(err)
		}
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		cfg.OnNotification = onNote
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	a, b := connect(nil), connect(nil)
	var silent atomic.Int32
	c := connect(func(*pgconn.PgConn, *pgconn.Notification) { silent.Add(1) })
	for _, l := range []*pgx.Conn{a, b} {
		if _, err := l.Exec(ctx, `LISTEN ch; LISTEN "Host_Ch"; LISTEN host_ch`); err != nil {
			t.Fatal(err)
		}
	}
	const n = 10
	var want []string
	for i := range n {
		for _, w := range []struct {
			name string
			conn *pgx.Conn
		}{{"a", a}, {"c", c}} {
			p := fmt.Sprintf("%s-%d", w.name, i)
			if _, err := w.conn.Exec(ctx, "SELECT pg_notify('ch', $1)", p); err != nil {
				t.Fatal(err)
			}
			want = append(want, p)
		}
	}
	// collect waits for the notifications of conn until it has every
	// payload of want on ch and three on host_ch.
	collect := func(name string, conn *pgx.Conn, want []string) {
		t.Helper()
		var got []string
		var host []int
		for len(got) < len(want) || len(host) < 3 {
			wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
			note, err := conn.WaitForNotification(wctx)
			wcancel()
			if err != nil {
				t.Fatalf("%s: after %v and host %v: %v", name, got, host, err)
			}
			switch note.Channel {
			case "ch":
				got = append(got, note.Payload)
			case "host_ch":
				v, err := strconv.Atoi(note.Payload)
				if err != nil {
					t.Fatalf("%s: host payload %q", name, note.Payload)
				}
				host = append(host, v)
			default:
				t.Fatalf("%s: notification on %q (nothing writes there)", name, note.Channel)
			}
		}
		if !slices.Equal(got[:len(want)], want) {
			t.Fatalf("%s received %v, want %v", name, got, want)
		}
		for i := 1; i < len(host); i++ {
			if host[i] != host[i-1]+1 {
				t.Fatalf("%s: host notifications %v: not consecutive", name, host)
			}
		}
	}
	collect("a", a, want)
	collect("b", b, want)

	// b stops listening on ch; a still gets ch, b gets no ch.
	if _, err := b.Exec(ctx, "UNLISTEN ch"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "SELECT pg_notify('ch', 'after unlisten')"); err != nil {
		t.Fatal(err)
	}
	collect("a after b's UNLISTEN", a, []string{"after unlisten"})
	for range 5 { // b keeps getting host_ch, never ch
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		note, err := b.WaitForNotification(wctx)
		wcancel()
		if err != nil {
			t.Fatal(err)
		}
		if note.Channel != "host_ch" {
			t.Fatalf("b after UNLISTEN ch: %s %q", note.Channel, note.Payload)
		}
	}
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if k := silent.Load(); k != 0 {
		t.Fatalf("a socket that never ran LISTEN received %d notifications", k)
	}
}
