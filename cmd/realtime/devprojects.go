package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openrealtime/realtime/internal/demo"
	"github.com/openrealtime/realtime/internal/pgcluster"
)

// devProject is one project of `realtime dev --projects N`.
type devProject struct {
	ref    string
	dbURL  string
	source string // logical or notify
	keys   demo.Keys
}

// devProjectCount reports whether the --projects value of `realtime dev`
// is a project count (docs/projects.md "Trying it: realtime dev") rather
// than a projects file.
func devProjectCount(v string) (int, bool) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, false
	}
	return n, true
}

// runDevProjects starts n projects (n databases of one throwaway cluster,
// or n PGlite bridges with --source notify; with --pglite-projects m the
// last m run on PGlite bridges and the others on the cluster), writes them
// to a projects file in a temporary directory and serves them until ctx
// ends, printing one line per project.
func runDevProjects(ctx context.Context, o *options, n, lite, pgPort int) error {
	if n < 1 || n > 100 {
		return fmt.Errorf("dev: --projects N must be 1 to 100, not %d", n)
	}
	if o.Source == "notify" {
		lite = n
	}
	if lite < 0 || lite > n {
		return fmt.Errorf("dev: --pglite-projects must be 0 to --projects (%d), not %d", n, lite)
	}
	dir, err := os.MkdirTemp("", "realtime-dev-projects-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ps := make([]devProject, n)
	// The PGlite bridges start while the cluster and its databases do.
	lites := make(chan []startedPGlite, 1)
	var liteErr error
	if lite > 0 {
		fmt.Fprintf(os.Stderr, "starting %d throwaway PGlite bridges ...\n", lite)
		go func() {
			bridges, err := startPGlites(ctx, lite)
			liteErr = err // read after the receive below
			lites <- bridges
		}()
	} else {
		lites <- nil
	}
	var bridges []startedPGlite
	waited := false
	waitLites := func() error {
		if !waited {
			bridges, waited = <-lites, true
		}
		return liteErr
	}
	defer func() {
		waitLites()
		for _, b := range bridges {
			b.stop()
		}
	}()
	var cluster *pgcluster.Cluster
	if lite < n {
		fmt.Fprintf(os.Stderr, "starting a throwaway PostgreSQL with %d databases ...\n", n-lite)
		if cluster, err = pgcluster.Start(ctx, pgcluster.Options{Port: pgPort}); err != nil {
			return err
		}
		defer cluster.Stop()
	}
	for i := range n - lite {
		p := &ps[i]
		p.ref, p.source = fmt.Sprintf("project%d", i+1), "logical"
		if p.dbURL, err = devDatabase(ctx, cluster, p.ref); err != nil {
			return err
		}
	}
	if err := waitLites(); err != nil {
		return err
	}
	for i, b := range bridges {
		p := &ps[n-lite+i]
		p.ref, p.source, p.dbURL = fmt.Sprintf("project%d", n-lite+i+1), "notify", b.url
	}
	var file strings.Builder
	file.WriteString("projects:\n")
	for i := range ps {
		p := &ps[i]
		if p.keys, err = demo.MakeKeys(demo.NewSecret(), 10*365*24*time.Hour); err != nil {
			return err
		}
		fmt.Fprintf(&file, "  - ref: %s\n    db_url: %q\n    source: %s\n    jwt_secret: %q\n", p.ref, p.dbURL, p.source, p.keys.Secret)
	}
	path := filepath.Join(dir, "projects.yaml")
	if err := os.WriteFile(path, []byte(file.String()), 0o600); err != nil {
		return err
	}
	// Only the projects: no flag-configured project.
	o.ProjectsFile, o.ProjectsState = path, path+".state.json"
	o.JWTSecret, o.DBURL = "", ""
	if err := o.validate(); err != nil {
		return err
	}
	return serve(ctx, o, hooks{listening: func(addr string) { printDevProjects(os.Stdout, addr, o.AdminToken, path, ps) }})
}

// startedPGlite is a PGlite bridge of `realtime dev --projects` and its URL.
type startedPGlite struct {
	*devPGlite
	url string
}

// startPGlites starts n PGlite bridges at once (a new data directory takes
// a while to initialise). It returns the bridges that started, for the
// caller to stop, and the first error.
func startPGlites(ctx context.Context, n int) ([]startedPGlite, error) {
	type result struct {
		b   startedPGlite
		err error
	}
	results := make(chan result, n)
	for range n {
		go func() {
			lite, url, err := startPGlite(ctx, 0)
			results <- result{startedPGlite{lite, url}, err}
		}()
	}
	var bridges []startedPGlite
	var first error
	for range n {
		r := <-results
		if r.err != nil {
			first = cmp.Or(first, r.err)
			continue
		}
		bridges = append(bridges, r.b)
	}
	return bridges, first
}

// devDatabase creates database name in c with the demo schema.
func devDatabase(ctx context.Context, c *pgcluster.Cluster, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("dev: connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("dev: create database %s: %w", name, err)
	}
	url := c.URL(name)
	if err := applySchema(ctx, url); err != nil {
		return "", err
	}
	return url, nil
}

// printDevProjects prints one line per project: its URL, database, JWT
// secret, keys and a curl line that broadcasts to it.
func printDevProjects(w io.Writer, addr, adminToken, file string, ps []devProject) {
	port := addr[strings.LastIndex(addr, ":")+1:]
	fmt.Fprintf(w, "\nrealtime dev is running %d projects (Ctrl-C stops it and removes the databases)\n  admin token %s, inspector at http://<ref>.localhost:%s/admin/\n  projects file %s (edit it, then kill -HUP %d)\n\n",
		len(ps), adminToken, port, file, os.Getpid())
	for _, p := range ps {
		url := fmt.Sprintf("http://%s.localhost:%s", p.ref, port)
		fmt.Fprintf(w, "%s  %s  db %s  secret %s  anon %s  service %s  curl -X POST %s/realtime/v1/api/broadcast -H 'apikey: %s' -H 'Content-Type: application/json' -d '{\"messages\":[{\"topic\":\"room\",\"event\":\"hello\",\"payload\":{\"from\":\"%s\"}}]}'\n",
			p.ref, url, p.dbURL, p.keys.Secret, p.keys.Anon, p.keys.Service, url, p.keys.Service, p.ref)
	}
	fmt.Fprintln(w)
}
