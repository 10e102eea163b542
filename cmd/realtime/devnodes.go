package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openrealtime/realtime/internal/demo"
	"github.com/openrealtime/realtime/internal/pgcluster"
	"github.com/openrealtime/realtime/realtime"
)

// printDevNodesJSON prints printDevJSON's line for the first node with a
// "nodes" list: name, url and websocket of every node.
func printDevNodesJSON(nodes []devNode, dbURL, adminToken string, k demo.Keys) {
	list := make([]map[string]string, len(nodes))
	for i, nd := range nodes {
		list[i] = map[string]string{"name": nd.name, "url": "http://" + nd.addr, "websocket": "ws://" + nd.addr + "/realtime/v1/websocket"}
	}
	addr := nodes[0].addr
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"url": "http://" + addr, "websocket": "ws://" + addr + "/realtime/v1/websocket",
		"admin_url": "http://" + addr + "/admin/", "admin_token": adminToken,
		"db_url": dbURL, "jwt_secret": k.Secret,
		"anon_key": k.Anon, "service_key": k.Service,
		"user_key": k.User, "user_id": k.UserID, "user2_key": k.User2, "user2_id": k.User2ID,
		"nodes": list,
	})
}

// maxDevNodes bounds `realtime dev --nodes N`.
const maxDevNodes = 9

// devNode is one node of `realtime dev --nodes N` once it listens.
type devNode struct {
	name, addr string
}

// runDevNodes starts a throwaway PostgreSQL with the demo schema and n
// nodes on it, in this process, forming a cluster through their embedded
// NATS servers (docs/cluster.md "Trying it"). Node i listens on --addr's
// port + i (free ports when it is 0). It prints every node's URL once all
// listen and serves until ctx ends; a node that fails stops the others.
func runDevNodes(ctx context.Context, o *options, n, pgPort int, asJSON bool) error {
	if n < 2 || n > maxDevNodes {
		return fmt.Errorf("dev: --nodes N must be 2 to %d, not %d", maxDevNodes, n)
	}
	if o.Source == "notify" || o.ProjectsFile != "" {
		return fmt.Errorf("dev: --nodes needs PostgreSQL (not --source notify) and no --projects")
	}
	host, port, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return fmt.Errorf("dev: --addr: %w", err)
	}
	base, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("dev: --addr: bad port %q", port)
	}
	fmt.Fprintf(os.Stderr, "starting a throwaway PostgreSQL for %d nodes ...\n", n)
	pg, err := pgcluster.Start(ctx, pgcluster.Options{Port: pgPort})
	if err != nil {
		return err
	}
	defer pg.Stop()
	dbURL := pg.URL("postgres")
	if err := applySchema(ctx, dbURL); err != nil {
		return err
	}
	keys, err := demo.MakeKeys(o.JWTSecret, 10*365*24*time.Hour)
	if err != nil {
		return err
	}
	insertRoutes, closeRoutes, err := devRoutes(ctx, dbURL, o.JWTSecret)
	if err != nil {
		return err
	}
	defer closeRoutes()

	routes := make([]string, n)
	for i := range routes {
		p, err := pgcluster.FreePort()
		if err != nil {
			return err
		}
		routes[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	opts, err := devNodeOptions(o, host, base, dbURL, routes)
	if err != nil {
		return err
	}

	return serveDevNodes(ctx, opts, insertRoutes, func(nodes []devNode) {
		printDevNodesAs(asJSON, nodes, dbURL, o.AdminToken, keys)
	})
}

// serveDevNodes serves every node of opts until ctx ends or one stops (which
// stops the others), and calls ready with the nodes, sorted by name, once
// every one answers /healthz with 200. It returns the first node's error.
func serveDevNodes(ctx context.Context, opts []*options, insertRoutes func(*realtime.Server), ready func([]devNode)) error {
	n := len(opts)
	nctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex // guards listening
	listening := make([]devNode, 0, n)
	errs := make(chan error, n)
	for _, oi := range opts {
		go func() {
			err := serve(nctx, oi, hooks{
				routes: insertRoutes,
				listening: func(addr string) {
					mu.Lock()
					listening = append(listening, devNode{name: oi.NodeName, addr: addr})
					all := len(listening) == n
					mu.Unlock()
					if all {
						slices.SortFunc(listening, func(a, b devNode) int { return strings.Compare(a.name, b.name) })
						go func() {
							if awaitDevNodes(nctx, listening) == nil {
								ready(listening)
							}
						}()
					}
				},
			})
			if err != nil {
				err = fmt.Errorf("%s: %w", oi.NodeName, err)
			}
			cancel() // one node down stops the dev cluster
			errs <- err
		}()
	}
	var first error
	for range opts {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// printDevNodesAs prints the nodes as printDevNodesJSON or printDevNodes.
func printDevNodesAs(asJSON bool, nodes []devNode, dbURL, adminToken string, k demo.Keys) {
	if asJSON {
		printDevNodesJSON(nodes, dbURL, adminToken, k)
	} else {
		printDevNodes(os.Stdout, nodes, dbURL, adminToken, k)
	}
}

// awaitDevNodes waits until every node's /healthz answers 200, or ctx ends:
// the URLs are printed only then, since a hand-off node answers 503 until
// its change stream is ready, which needs the others.
func awaitDevNodes(ctx context.Context, nodes []devNode) error {
	client := &http.Client{Timeout: 2 * time.Second}
	for _, nd := range nodes {
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+nd.addr+"/healthz", nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// devNodeOptions derives each node's options from the dev command's: its
// address (--addr's port + i, or a free one), name node-<i+1>, the
// embedded NATS routes to every node, and the cluster flags as given
// (--cluster-handoff, --cluster-replicas, --cluster-queue). A
// --cluster-store-dir becomes one sub-directory per node, named after it,
// since two JetStream servers cannot share a directory. The extra
// listeners (metrics, pprof, NATS clients) belong to the first node.
func devNodeOptions(o *options, host string, base int, dbURL string, routes []string) ([]*options, error) {
	opts := make([]*options, len(routes))
	for i := range opts {
		oi := *o
		addrPort := 0
		if base != 0 {
			addrPort = base + i
		}
		oi.Addr = net.JoinHostPort(host, strconv.Itoa(addrPort))
		oi.DBURL = dbURL
		oi.NodeName = fmt.Sprintf("node-%d", i+1)
		oi.ClusterEmbedded, oi.NATSURL = true, ""
		oi.ClusterListen, oi.ClusterPeers = routes[i], strings.Join(routes, ",")
		if o.ClusterStoreDir != "" {
			oi.ClusterStoreDir = filepath.Join(o.ClusterStoreDir, oi.NodeName)
		}
		if i > 0 {
			// One process: the extra listeners belong to the first node.
			oi.MetricsAddr, oi.PprofAddr, oi.ClusterClientListen = "", "", ""
		}
		if err := oi.validate(); err != nil {
			return nil, fmt.Errorf("dev: %s: %w", oi.NodeName, err)
		}
		opts[i] = &oi
	}
	return opts, nil
}

// printDevNodes prints one line per node (name, URL, WebSocket URL) and
// the keys they share.
func printDevNodes(w io.Writer, nodes []devNode, dbURL, adminToken string, k demo.Keys) {
	fmt.Fprintf(w, "\nrealtime dev is running %d nodes on one database (Ctrl-C stops them and removes the database)\n", len(nodes))
	fmt.Fprintf(w, "  db %s  secret %s  anon %s  service %s  admin token %s\n\n", dbURL, k.Secret, k.Anon, k.Service, adminToken)
	for _, nd := range nodes {
		fmt.Fprintf(w, "%s  http://%s  ws://%s/realtime/v1/websocket\n", nd.name, nd.addr, nd.addr)
	}
	fmt.Fprintln(w)
}
