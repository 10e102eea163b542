package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/internal/demo"
	"github.com/openrealtime/realtime/internal/pgcluster"
	"github.com/openrealtime/realtime/internal/realtimeschema"
	"github.com/openrealtime/realtime/realtime"
)

// runDev starts a throwaway PostgreSQL (or, with --source notify, PGlite
// behind cmd/pglite-bridge) with the demo schema and serves on it until SIGINT or
// SIGTERM, then stops the database and removes its data. A signal during
// start-up cancels ctx, which ends the start and runs the same cleanup.
func runDev(args []string) error {
	var o options
	fs := flag.NewFlagSet("realtime dev", flag.ContinueOnError)
	o.register(fs, "127.0.0.1:4000")
	asJSON := fs.Bool("json", false, "print the connection details as one JSON line instead of the banner")
	pgPort := fs.Int("pg-port", 0, "port of the throwaway PostgreSQL (0 picks a free one)")
	liteProjects := fs.Int("pglite-projects", 0, "with --projects N: the last M of the N projects run on PGlite bridges (source notify), the others on the cluster")
	nodes := fs.Int("nodes", envInt("REALTIME_DEV_NODES", 1), "run this many nodes as one cluster (embedded NATS) on the throwaway database, on --addr's port and the next ones (REALTIME_DEV_NODES, docs/cluster.md)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.JWTSecret == "" {
		o.JWTSecret = demo.NewSecret()
	}
	if o.AdminToken == "" {
		// The banner prints it: the inspector at /admin/ needs a token.
		o.AdminToken = demo.NewSecret()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *nodes != 1 {
		return runDevNodes(ctx, &o, *nodes, *pgPort, *asJSON)
	}
	if n, ok := devProjectCount(o.ProjectsFile); ok {
		return runDevProjects(ctx, &o, n, *liteProjects, *pgPort)
	}

	var dbURL string
	switch o.Source {
	case "notify":
		fmt.Fprintln(os.Stderr, "starting a throwaway PGlite (cmd/pglite-bridge) ...")
		lite, url, err := startPGlite(ctx, *pgPort)
		if err != nil {
			return err
		}
		defer lite.stop()
		dbURL = url
	default:
		fmt.Fprintln(os.Stderr, "starting a throwaway PostgreSQL ...")
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{Port: *pgPort})
		if err != nil {
			return err
		}
		defer cluster.Stop()
		dbURL = cluster.URL("postgres")
		if err := applySchema(ctx, dbURL); err != nil {
			return err
		}
	}
	keys, err := demo.MakeKeys(o.JWTSecret, 10*365*24*time.Hour)
	if err != nil {
		return err
	}
	o.DBURL = dbURL
	if err := o.validate(); err != nil {
		return err
	}
	insertRoutes, closeRoutes, err := devRoutes(ctx, dbURL, o.JWTSecret)
	if err != nil {
		return err
	}
	defer closeRoutes()
	return serve(ctx, &o, hooks{
		routes: insertRoutes,
		listening: func(addr string) {
			if *asJSON {
				printDevJSON(addr, dbURL, o.AdminToken, keys)
			} else {
				printDevBanner(os.Stdout, addr, dbURL, o.AdminToken, keys)
			}
		},
	})
}

// devRoutes returns the dev insert endpoints (POST /dev/v1/todos and
// /dev/v1/messages, writing as the caller's token) on a small pool of
// their own, and the function that closes that pool.
func devRoutes(ctx context.Context, dbURL, secret string) (routes func(*realtime.Server), closePool func(), err error) {
	verifier, err := auth.NewVerifier(auth.Config{Secret: []byte(secret)})
	if err != nil {
		return nil, nil, err
	}
	pcfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, nil, err
	}
	pcfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec // safe on PGlite's shared session
	pcfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, nil, err
	}
	return func(s *realtime.Server) {
		s.Handle("POST /dev/v1/todos", devInsert(pool, verifier))
		s.Handle("POST /dev/v1/messages", devInsert(pool, verifier))
	}, pool.Close, nil
}

func applySchema(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("dev: connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, demo.SchemaSQL); err != nil {
		return fmt.Errorf("dev: demo schema: %w", err)
	}
	if _, err := realtimeschema.Migrate(ctx, conn, realtimeschema.Options{}); err != nil {
		// The demo still serves postgres_changes without the private room.
		fmt.Fprintf(os.Stderr, "dev: realtime schema unavailable, no private demo room: %v\n", err)
		return nil
	}
	if _, err := conn.Exec(ctx, demo.PrivateSQL); err != nil {
		return fmt.Errorf("dev: demo private room: %w", err)
	}
	return nil
}

// devInsert inserts one row as the caller's JWT claims, like PostgREST
// would: the role and request.jwt.claims apply, so RLS WITH CHECK holds.
func devInsert(pool *pgxpool.Pool, v *auth.Verifier) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		table := "todos"
		if strings.HasSuffix(r.URL.Path, "/messages") {
			table = "messages"
		}
		tok := strings.TrimSpace(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if tok == "" {
			tok = r.Header.Get("apikey")
		}
		claims, err := v.Verify(tok)
		if err != nil {
			writeDevError(w, http.StatusUnauthorized, err.Error())
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if len(strings.TrimSpace(string(body))) == 0 {
			body = []byte("{}")
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			writeDevError(w, http.StatusBadRequest, "body must be a JSON object")
			return
		}
		cols := make([]string, 0, len(fields))
		for k := range fields {
			cols = append(cols, pgx.Identifier{k}.Sanitize())
		}
		list := strings.Join(cols, ", ")
		q := fmt.Sprintf("INSERT INTO public.%s (%s) SELECT %s FROM jsonb_populate_record(NULL::public.%s, $1::jsonb) RETURNING jsonb_build_object('id', id)", table, list, list, table)
		if len(cols) == 0 {
			q = fmt.Sprintf("INSERT INTO public.%s DEFAULT VALUES RETURNING jsonb_build_object('id', id)", table)
		}
		var row json.RawMessage
		err = pgx.BeginFunc(r.Context(), pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(r.Context(), "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true)", claims.Role, string(claims.Raw)); err != nil {
				return err
			}
			if len(cols) == 0 {
				return tx.QueryRow(r.Context(), q).Scan(&row)
			}
			return tx.QueryRow(r.Context(), q, string(body)).Scan(&row)
		})
		if err != nil {
			writeDevError(w, http.StatusBadRequest, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		w.Write(row)
	}
}

func writeDevError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func printDevJSON(addr, dbURL, adminToken string, k demo.Keys) {
	json.NewEncoder(os.Stdout).Encode(map[string]string{
		"url": "http://" + addr, "websocket": "ws://" + addr + "/realtime/v1/websocket",
		"admin_url": "http://" + addr + "/admin/", "admin_token": adminToken,
		"db_url": dbURL, "jwt_secret": k.Secret,
		"anon_key": k.Anon, "service_key": k.Service,
		"user_key": k.User, "user_id": k.UserID, "user2_key": k.User2, "user2_id": k.User2ID,
	})
}

// printDevBanner prints what a newcomer needs to try the service: the
// keys, one export line that sets the shell variables the README's curl
// lines use (ANON_KEY, USER_KEY, SERVICE_KEY, ADMIN_TOKEN), those curl
// lines, where the inspector is, and a supabase-js script reading the same
// variables.
func printDevBanner(w io.Writer, addr, dbURL, adminToken string, k demo.Keys) {
	fmt.Fprintf(w, `
realtime dev is running (Ctrl-C stops it and removes the database)

  URL            http://%[1]s   (WebSocket: ws://%[1]s/realtime/v1/websocket)
  Inspector      http://%[1]s/admin/   (paste the admin token)
  Database       %[2]s
  JWT secret     %[3]s
  anon key       %[4]s
  user key       %[5]s   (sub %[6]s)
  service key    %[7]s
  admin token    %[8]s

in another shell, set the keys the commands below (and the README's) use:

  export ANON_KEY=%[4]s USER_KEY=%[5]s SERVICE_KEY=%[7]s ADMIN_TOKEN=%[8]s

watch the user's changes as Server-Sent Events:

  curl -N "http://%[1]s/realtime/v1/sse?apikey=$ANON_KEY&schema=public&table=todos" -H "Authorization: Bearer $USER_KEY"

insert a row as that user (the demo table is owner-only under RLS):

  curl -X POST http://%[1]s/dev/v1/todos -H "Authorization: Bearer $USER_KEY" -d '{"title":"hello"}'

ask the inspector's API which channels exist:

  curl http://%[1]s/admin/api/channels -H "Authorization: Bearer $ADMIN_TOKEN"

supabase-js needs Node 22+ (for its global WebSocket; on Node 20, npm install ws and pass
{ realtime: { transport: WebSocket } } with import WebSocket from 'ws') and ESM. In an empty
folder run npm install @supabase/supabase-js, save this as demo.mjs and run node demo.mjs in
the shell with the exports:

  import { createClient } from '@supabase/supabase-js'
  const supabase = createClient('http://%[1]s', process.env.ANON_KEY, { accessToken: async () => process.env.USER_KEY })
  await supabase.realtime.setAuth(process.env.USER_KEY) // join as the user, so RLS shows their rows
  supabase.channel('todos')
    .on('postgres_changes', { event: '*', schema: 'public', table: 'todos' }, (p) => console.log(p))
    .subscribe((status) => console.log(status))

a private room: the user is a member of room:demo (public.room_members, policy on
realtime.messages), and rows inserted into public.room_messages are broadcast to it by a
trigger calling realtime.broadcast_changes. Add to demo.mjs:

  supabase.channel('room:demo', { config: { private: true } })
    .on('broadcast', { event: '*' }, (m) => console.log('room:demo', m))
    .subscribe((status) => console.log('room:demo', status))

then, in psql on the database above:

  INSERT INTO public.room_messages (room, body) VALUES ('room:demo', 'hello');
  SELECT realtime.send('{"text":"from SQL"}', 'note', 'room:demo');

`, addr, dbURL, k.Secret, k.Anon, k.User, k.UserID, k.Service, adminToken)
}
