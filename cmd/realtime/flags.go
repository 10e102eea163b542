package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/cluster"
	"github.com/openrealtime/realtime/projects"
)

// options is the service configuration. Every flag has a matching
// environment variable; a flag given on the command line wins.
type options struct {
	Addr                 string
	JWTSecret            string
	JWKSFile             string
	DBURL                string
	AdminToken           string
	MaxChannelsPerClient int
	MaxPayloadBytes      int
	MaxJoinsPerSecond    float64
	MaxQueueBytes        int
	MaxConnections       int
	MaxConnectionsPerIP  int
	MaxResumesPerUser    int
	MetricsAddr          string
	IdleTimeout          time.Duration
	WriteTimeout         time.Duration
	IOUring              bool
	LogLevel             string
	LogFormat            string
	Source               string
	Slot                 string
	Publication          string
	PollInterval         time.Duration
	Retention            time.Duration
	SSEHeartbeat         time.Duration
	SSEReplayCount       int
	SSEReplayAge         time.Duration
	SSEReplayBytes       int
	RLSVerify            float64
	FanoutClassBudget    time.Duration
	ShutdownTimeout      time.Duration
	PprofAddr            string
	MessagesRetention    time.Duration
	PGliteBridgeSecret   string
	ProjectsFile         string
	ProjectRef           string
	ProjectsState        string
	APIJWTSecret         string
	NodeName             string
	ClusterEmbedded      bool
	ClusterListen        string
	ClusterPeers         string
	ClusterAdvertise     string
	ClusterName          string
	ClusterClientListen  string
	NATSURL              string
	ClusterQueue         int
	ClusterStoreDir      string
	ClusterReplicas      int
	ClusterHandoff       bool

	// cluster is this process's cluster membership, set by serve when
	// clustered (not a flag); nil on a single node.
	cluster *cluster.Node
}

// clustered reports whether the options ask for a cluster.
func (o *options) clustered() bool { return o.ClusterEmbedded || o.NATSURL != "" }

// clusterConfig is the cluster.Config the options describe.
func (o *options) clusterConfig(log *slog.Logger) cluster.Config {
	var peers []string
	for _, p := range strings.Split(o.ClusterPeers, ",") {
		if p = strings.TrimSpace(p); p != "" {
			peers = append(peers, p)
		}
	}
	return cluster.Config{
		NodeName: o.NodeName, Embedded: o.ClusterEmbedded, ClusterListen: o.ClusterListen, Peers: peers,
		ClusterName: o.ClusterName, Advertise: o.ClusterAdvertise, ClientListen: o.ClusterClientListen, URL: o.NATSURL, QueueLen: o.ClusterQueue, Logger: log,
		StoreDir: o.ClusterStoreDir, Replicas: o.ClusterReplicas,
	}
}

// defaultNodeName is the host name in lower case with characters a node
// name cannot hold spelled '-', cut to 32 bytes.
func defaultNodeName() string {
	h, _ := os.Hostname()
	b := []byte(strings.ToLower(h))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 32 {
		b = b[:32]
	}
	if len(b) == 0 {
		return "node"
	}
	return string(b)
}

// envString returns the first non-empty variable of names, else def.
func envString(def string, names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return def
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func envBool(name string, def bool) bool {
	if v := os.Getenv(name); v != "" {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.ParseFloat(v, 64); err == nil {
			return n
		}
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// register defines the flags shared by serve and dev on fs.
func (o *options) register(fs *flag.FlagSet, defaultAddr string) {
	fs.StringVar(&o.Addr, "addr", envString(defaultAddr, "REALTIME_ADDR"), "listen address (REALTIME_ADDR)")
	fs.StringVar(&o.JWTSecret, "jwt-secret", envString("", "REALTIME_JWT_SECRET", "API_JWT_SECRET", "JWT_SECRET"), "HS256/384/512 secret (REALTIME_JWT_SECRET, API_JWT_SECRET, JWT_SECRET)")
	fs.StringVar(&o.JWKSFile, "jwks-file", envString("", "REALTIME_JWKS_FILE"), "JWKS file for RS/ES/EdDSA keys chosen by kid (REALTIME_JWKS_FILE)")
	fs.StringVar(&o.DBURL, "db-url", envString("", "DATABASE_URL"), "PostgreSQL URL for postgres_changes (DATABASE_URL)")
	fs.StringVar(&o.AdminToken, "admin-token", envString("", "REALTIME_ADMIN_TOKEN"), "token for the admin inspector (REALTIME_ADMIN_TOKEN)")
	fs.IntVar(&o.MaxChannelsPerClient, "max-channels-per-client", envInt("REALTIME_MAX_CHANNELS_PER_CLIENT", 100), "channels one connection may join (REALTIME_MAX_CHANNELS_PER_CLIENT)")
	fs.IntVar(&o.MaxPayloadBytes, "max-payload-bytes", envInt("REALTIME_MAX_PAYLOAD_BYTES", 256*1024), "largest broadcast or presence payload (REALTIME_MAX_PAYLOAD_BYTES)")
	fs.Float64Var(&o.MaxJoinsPerSecond, "max-joins-per-second", envFloat("REALTIME_MAX_JOINS_PER_SECOND", 100), "joins per second per connection (REALTIME_MAX_JOINS_PER_SECOND)")
	fs.IntVar(&o.MaxConnections, "max-connections", envInt("REALTIME_MAX_CONNECTIONS", 0), "open WebSocket connections and SSE streams in total; 0 derives it from the file descriptor limit (REALTIME_MAX_CONNECTIONS)")
	fs.IntVar(&o.MaxConnectionsPerIP, "max-connections-per-ip", envInt("REALTIME_MAX_CONNECTIONS_PER_IP", 0), "open connections per client address; 0 means no cap (REALTIME_MAX_CONNECTIONS_PER_IP)")
	fs.IntVar(&o.MaxResumesPerUser, "max-resumes-per-user", envInt("REALTIME_MAX_RESUMES_PER_USER", 4), "concurrent SSE resumes per user (REALTIME_MAX_RESUMES_PER_USER)")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", envString("", "REALTIME_METRICS_ADDR"), "also serve /metrics without a token on this address, e.g. 127.0.0.1:9100; on the main address it needs the admin token (REALTIME_METRICS_ADDR)")
	fs.IntVar(&o.MaxQueueBytes, "max-queue-bytes", envInt("REALTIME_MAX_QUEUE_BYTES", 8<<20), "outgoing bytes a connection may have queued before it is dropped as a slow consumer (REALTIME_MAX_QUEUE_BYTES)")
	fs.DurationVar(&o.IdleTimeout, "idle-timeout", envDuration("REALTIME_IDLE_TIMEOUT", 60*time.Second), "close sockets silent for this long (REALTIME_IDLE_TIMEOUT)")
	fs.BoolVar(&o.IOUring, "io-uring", envBool("REALTIME_IO_URING", true), "gather a fan-out's writes to idle WebSocket connections into one io_uring submission where the kernel allows it; false: one write(2) per connection (REALTIME_IO_URING, docs/protocol.md §1)")
	fs.DurationVar(&o.WriteTimeout, "write-timeout", envDuration("REALTIME_WRITE_TIMEOUT", 10*time.Second), "deadline of one socket write (REALTIME_WRITE_TIMEOUT)")
	fs.StringVar(&o.LogLevel, "log-level", envString("info", "REALTIME_LOG_LEVEL"), "debug, info, warn or error (REALTIME_LOG_LEVEL)")
	fs.StringVar(&o.LogFormat, "log-format", envString("text", "REALTIME_LOG_FORMAT"), "text or json (REALTIME_LOG_FORMAT)")
	fs.StringVar(&o.Source, "source", envString("logical", "REALTIME_SOURCE"), "change source: logical (replication slot) or notify (change table, for PGlite) (REALTIME_SOURCE)")
	fs.StringVar(&o.Slot, "slot", envString("supabase_realtime_slot", "REALTIME_SLOT"), "logical replication slot (REALTIME_SLOT)")
	fs.StringVar(&o.Publication, "publication", envString("supabase_realtime", "REALTIME_PUBLICATION"), "publication whose tables are streamed (REALTIME_PUBLICATION)")
	fs.DurationVar(&o.PollInterval, "poll-interval", envDuration("REALTIME_POLL_INTERVAL", 100*time.Millisecond), "notify source: change-table poll interval (REALTIME_POLL_INTERVAL)")
	fs.DurationVar(&o.Retention, "retention", envDuration("REALTIME_RETENTION", time.Hour), "notify source: how long delivered change rows are kept (REALTIME_RETENTION)")
	fs.DurationVar(&o.SSEHeartbeat, "sse-heartbeat", envDuration("REALTIME_SSE_HEARTBEAT", 15*time.Second), "SSE comment heartbeat interval (REALTIME_SSE_HEARTBEAT)")
	fs.IntVar(&o.SSEReplayCount, "sse-replay-count", envInt("REALTIME_SSE_REPLAY_COUNT", 10000), "changes kept for SSE resume (REALTIME_SSE_REPLAY_COUNT)")
	fs.DurationVar(&o.SSEReplayAge, "sse-replay-age", envDuration("REALTIME_SSE_REPLAY_AGE", 10*time.Minute), "oldest change kept for SSE resume (REALTIME_SSE_REPLAY_AGE)")
	fs.IntVar(&o.SSEReplayBytes, "sse-replay-bytes", envInt("REALTIME_SSE_REPLAY_BYTES", 64<<20), "bytes of changes kept for SSE resume (REALTIME_SSE_REPLAY_BYTES)")
	fs.Float64Var(&o.RLSVerify, "rls-verify", envFloat("REALTIME_RLS_VERIFY", 0), "fraction (0..1) of compiled RLS decisions re-checked in PostgreSQL; disagreements are counted (REALTIME_RLS_VERIFY)")
	fs.DurationVar(&o.FanoutClassBudget, "fanout-class-budget", envDuration("REALTIME_FANOUT_CLASS_BUDGET", channels.DefaultClassBudget), "filter time one subscriber class may spend per change batch before the rest of the batch is dropped for it; negative disables (REALTIME_FANOUT_CLASS_BUDGET)")
	fs.StringVar(&o.PprofAddr, "pprof-addr", envString("", "REALTIME_PPROF_ADDR"), "serve net/http/pprof on this address, e.g. 127.0.0.1:6060; empty disables (REALTIME_PPROF_ADDR)")
	fs.DurationVar(&o.MessagesRetention, "messages-retention", envDuration("REALTIME_MESSAGES_RETENTION", 72*time.Hour), "how long realtime.messages day partitions are kept (REALTIME_MESSAGES_RETENTION)")
	fs.StringVar(&o.PGliteBridgeSecret, "pglite-bridge-secret", envString("", "REALTIME_PGLITE_BRIDGE_SECRET"), "secret a browser tab presents to serve as the database of --db-url pglite-bridge:// (the service-role key is accepted too) (REALTIME_PGLITE_BRIDGE_SECRET)")
	fs.StringVar(&o.ProjectsFile, "projects", envString("", "REALTIME_PROJECTS"), "YAML file of further projects, each with its own database, keys and limits, chosen by the host's first label or X-Project-Ref; reloaded on SIGHUP (REALTIME_PROJECTS, docs/projects.md)")
	fs.StringVar(&o.ProjectRef, "project-ref", envString("realtime-dev", "REALTIME_PROJECT_REF", "SELF_HOST_TENANT_NAME"), "with --projects: the ref that names the flag-configured project (REALTIME_PROJECT_REF)")
	fs.StringVar(&o.ProjectsState, "projects-state", envString("", "REALTIME_PROJECTS_STATE"), "with --projects: JSON file keeping the projects made through /api/tenants; default <projects file>.state.json (REALTIME_PROJECTS_STATE)")
	fs.StringVar(&o.APIJWTSecret, "api-jwt-secret", envString("", "REALTIME_API_JWT_SECRET", "API_JWT_SECRET"), "with --projects: HS256/384/512 secret of the bearer JWTs the management API /api/tenants accepts besides the admin token (REALTIME_API_JWT_SECRET, API_JWT_SECRET)")
	fs.StringVar(&o.NodeName, "node-name", envString(defaultNodeName(), "REALTIME_NODE_NAME"), "this node's name in a cluster, unique and stable: it names the node's replication slot; [a-z0-9_-]{1,32}, default the host name (REALTIME_NODE_NAME, docs/cluster.md)")
	fs.BoolVar(&o.ClusterEmbedded, "cluster-embedded", envBool("REALTIME_CLUSTER_EMBEDDED", false), "run a NATS server in this process and form a cluster with --cluster-peers (REALTIME_CLUSTER_EMBEDDED, docs/cluster.md)")
	fs.StringVar(&o.ClusterListen, "cluster-listen", envString("127.0.0.1:6222", "REALTIME_CLUSTER_LISTEN"), "with --cluster-embedded: the NATS route address other nodes dial (REALTIME_CLUSTER_LISTEN)")
	fs.StringVar(&o.ClusterPeers, "cluster-peers", envString("", "REALTIME_CLUSTER_PEERS"), "with --cluster-embedded: comma-separated route addresses (host:port) of the nodes; this node's own may be listed (REALTIME_CLUSTER_PEERS)")
	fs.StringVar(&o.ClusterName, "cluster-name", envString(cluster.DefaultClusterName, "REALTIME_CLUSTER_NAME"), "with --cluster-embedded: the NATS cluster's name, the same on every node; routes from servers of another name are refused, so two clusters on one network never merge; [a-z0-9_-]{1,32} (REALTIME_CLUSTER_NAME)")
	fs.StringVar(&o.ClusterAdvertise, "cluster-advertise", envString("", "REALTIME_CLUSTER_ADVERTISE"), "with --cluster-embedded: the route address (host:port) other nodes are told to dial, behind NAT or in containers; none: nodes dial only their --cluster-peers (no gossip); default the address they see (REALTIME_CLUSTER_ADVERTISE)")
	fs.StringVar(&o.ClusterClientListen, "cluster-client-listen", envString("", "REALTIME_CLUSTER_CLIENT_LISTEN"), "with --cluster-embedded: also accept NATS clients (e.g. the nats CLI) on host:port; default a random loopback port (REALTIME_CLUSTER_CLIENT_LISTEN)")
	fs.StringVar(&o.NATSURL, "nats-url", envString("", "REALTIME_NATS_URL", "NATS_URL"), "join a cluster through this external NATS server or cluster (comma-separated URLs) (REALTIME_NATS_URL, NATS_URL)")
	fs.StringVar(&o.ClusterStoreDir, "cluster-store-dir", envString("", "REALTIME_CLUSTER_STORE_DIR"), "with --cluster-embedded: the directory of the embedded JetStream's files (the change hand-off); default a new temporary directory removed at exit; keep one per node across restarts so a restarted node has its copy of the stream (REALTIME_CLUSTER_STORE_DIR)")
	fs.BoolVar(&o.ClusterHandoff, "cluster-handoff", envBool("REALTIME_CLUSTER_HANDOFF", true), "in a cluster, the nodes share one replication slot, read by one node at a time and handed to the others through JetStream (docs/cluster.md \"Change hand-off\"); false: every node reads its own slot; PGlite (notify) sources always read their own (REALTIME_CLUSTER_HANDOFF)")
	fs.IntVar(&o.ClusterReplicas, "cluster-replicas", envInt("REALTIME_CLUSTER_REPLICAS", 0), "replicas of each project's change stream, 1-5; 0 chooses 3 for an embedded cluster of 3 or more nodes, else 1 (REALTIME_CLUSTER_REPLICAS)")
	fs.IntVar(&o.ClusterQueue, "cluster-queue", envInt("REALTIME_CLUSTER_QUEUE", cluster.DefaultQueueLen), "messages waiting to be published to the cluster before more are dropped (REALTIME_CLUSTER_QUEUE)")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", envDuration("REALTIME_SHUTDOWN_TIMEOUT", 10*time.Second), "how long a graceful shutdown may take (REALTIME_SHUTDOWN_TIMEOUT)")
}

// validate checks the options that have no safe default.
func (o *options) validate() error {
	if o.JWTSecret == "" && o.JWKSFile == "" && o.ProjectsFile == "" {
		return fmt.Errorf("a JWT secret (--jwt-secret or REALTIME_JWT_SECRET) or a JWKS file (--jwks-file) is required")
	}
	switch o.Source {
	case "logical", "notify":
	default:
		return fmt.Errorf("--source must be logical or notify, not %q", o.Source)
	}
	if isBridgeURL(o.DBURL) && o.Source != "notify" {
		return fmt.Errorf("--db-url pglite-bridge:// needs --source notify (PGlite has no usable logical decoding)")
	}
	if o.MaxChannelsPerClient <= 0 || o.MaxPayloadBytes <= 0 || o.MaxJoinsPerSecond <= 0 || o.MaxResumesPerUser <= 0 {
		return fmt.Errorf("limits must be positive")
	}
	if o.MaxConnections < 0 || o.MaxConnectionsPerIP < 0 {
		return fmt.Errorf("connection caps must be positive, or 0 for the default")
	}
	if o.ProjectsFile != "" && !projects.ValidRef(o.ProjectRef) {
		return fmt.Errorf("--project-ref must match [a-z0-9-]{1,63}, not %q", o.ProjectRef)
	}
	if o.RLSVerify < 0 || o.RLSVerify > 1 {
		return fmt.Errorf("--rls-verify must be between 0 and 1")
	}
	if o.clustered() {
		if o.ClusterEmbedded && o.NATSURL != "" {
			return fmt.Errorf("--cluster-embedded and --nats-url are alternatives")
		}
		if err := o.clusterConfig(nil).Validate(); err != nil {
			return err
		}
		if o.DBURL != "" && o.Source != "logical" {
			return fmt.Errorf("a cluster needs --source logical: the nodes share the replication slot (docs/cluster.md)")
		}
		if !cluster.ValidNamespace(o.ProjectRef) {
			return fmt.Errorf("--project-ref must match [a-z0-9-]{1,63}, not %q", o.ProjectRef)
		}
	}
	if strings.ContainsAny(o.Publication, `"`) || strings.ContainsAny(o.Slot, `"' `) {
		return fmt.Errorf("slot and publication names must be plain identifiers")
	}
	return nil
}
