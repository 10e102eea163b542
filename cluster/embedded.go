package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Route health: a peer that stops answering pings is dropped after
// routePing × routeMaxPingsOut (the default, minutes, would keep a frozen
// peer's interest alive; docs/cluster.md "Failure behaviour implemented so far").
const (
	routePing        = time.Second
	routeMaxPingsOut = 3
)

// startEmbedded starts the in-process nats-server of cfg and waits until it
// accepts connections.
func startEmbedded(cfg *Config, log *slog.Logger) (srv *server.Server, remove func(), err error) {
	host, port, err := splitHostPort(cfg.ClusterListen)
	if err != nil {
		return nil, nil, err
	}
	dir, remove, err := storeDir(cfg)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			remove()
		}
	}()
	name := cfg.ClusterName
	if name == "" {
		name = DefaultClusterName
	}
	routes := make([]*url.URL, 0, len(cfg.Peers))
	for _, p := range cfg.Peers {
		routes = append(routes, &url.URL{Scheme: "nats", Host: p})
	}
	opts := &server.Options{
		ServerName: cfg.NodeName,
		NoSigs:     true,
		// The server starts its routes only after its client listener
		// (DontListen would keep it from routing at all), so without a
		// client address it listens on a random loopback port.
		Host: "127.0.0.1", Port: server.RANDOM_PORT,
		Cluster: server.ClusterOpts{
			Name: name, Host: host, Port: port,
			PingInterval: routePing, MaxPingsOut: routeMaxPingsOut,
		},
		Routes: routes,
		// JetStream carries the change hand-off (docs/cluster.md "Change
		// hand-off"). Every acknowledged write is on disk: the slot is
		// confirmed to PostgreSQL once the stream acknowledged a batch.
		JetStream: true, StoreDir: dir,
		JetStreamMaxMemory: 64 << 20, JetStreamMaxStore: 4 << 30,
		SyncAlways: true,
	}
	advertise(&opts.Cluster, cfg.Advertise)
	if cfg.ClientListen != "" {
		if opts.Host, opts.Port, err = splitHostPort(cfg.ClientListen); err != nil {
			return nil, nil, err
		}
	}
	srv, err = server.NewServer(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: embedded NATS server: %w", err)
	}
	srv.SetLoggerV2(natsLogger{log.With("component", "nats-server")}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, nil, fmt.Errorf("cluster: embedded NATS server not ready (route address %s)", cfg.ClusterListen)
	}
	return srv, remove, nil
}

// unroutable is the route address a node with --cluster-advertise none
// advertises: TEST-NET-1 (RFC 5737), never routed, so a server told of this
// node by another one (gossip) fails to dial it once and gives up, and
// every route is one a node's own peers list asked for.
const unroutable = "192.0.2.1"

// advertise applies Config.Advertise to the route options. nats-server has
// no switch for route gossip (its NoAdvertise only hides client URLs), and
// without an advertised address the others dial the address they saw this
// node connect from with its listen port: behind a proxy or a NAT, a path
// the peers list did not ask for.
func advertise(c *server.ClusterOpts, addr string) {
	switch addr {
	case "":
	case AdvertiseNone:
		c.NoAdvertise = true
		c.Advertise = net.JoinHostPort(unroutable, strconv.Itoa(c.Port))
	default:
		c.Advertise = addr
	}
}

// storeDir is the embedded server's JetStream directory: cfg.StoreDir, or
// a new temporary directory that remove deletes (this run's alone: two
// nodes on one machine never share one, and a restarted node gets the
// stream back from its peers).
func storeDir(cfg *Config) (dir string, remove func(), err error) {
	if cfg.StoreDir != "" {
		return cfg.StoreDir, func() {}, nil
	}
	dir, err = os.MkdirTemp("", "realtime-jetstream-"+cfg.NodeName+"-")
	if err != nil {
		return "", nil, fmt.Errorf("cluster: JetStream directory: %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

func splitHostPort(hp string) (string, int, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, fmt.Errorf("cluster: address %q: %w", hp, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("cluster: address %q: bad port", hp)
	}
	return h, port, nil
}

// natsLogger passes the embedded server's logs to slog: notices are info,
// errors warnings (the server reports a peer not up yet as an error and
// retries), fatal errors errors (the process is not exited).
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Errorf(format string, v ...any)  { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
