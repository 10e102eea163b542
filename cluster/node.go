package cluster

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// warnEvery is the least time between two warnings of one drop class.
const warnEvery = 10 * time.Second

// Node is this process's membership of the cluster: the NATS connection,
// the embedded server (embedded mode) and the goroutine that publishes.
// Its methods are safe for concurrent use.
type Node struct {
	cfg    Config
	log    *slog.Logger
	srv    *server.Server // nil with an external NATS
	rmDir  func()         // removes the embedded server's temporary JetStream directory
	nc     *nats.Conn
	origin string // this run of the node: name and boot id

	seenMu   sync.Mutex           // guards seen, down, lastPeer, peakNodes
	seen     map[string]time.Time // origin → when last heard
	lastPeer time.Time            // when any other origin was last heard
	// peakNodes is the most nodes (by name, this one included) heard at
	// once since start: the cluster's size as far as this node knows.
	peakNodes int
	iso       isolation           // owned by heartbeatLoop (isolation.go)
	isolated  atomic.Bool         // iso.isolated, for Stats and Isolated
	down      map[string]struct{} // origins declared down, until heard again
	hbDone    chan struct{}       // closed when heartbeatLoop has returned
	rep       reporting           // this node's and the peers' heartbeat reports (load.go)

	out  chan outMsg   // bounded; drained only by run
	kick chan struct{} // capacity 1: some broker's interest changed
	stop chan struct{} // closed by Close
	done chan struct{} // closed when run has returned
	once sync.Once     // guards the close of stop

	mu      sync.Mutex // guards brokers
	brokers map[*Broker]struct{}

	published, received atomic.Int64
	drops               [numDropClasses]atomic.Int64
	warned              [numDropClasses]atomic.Int64 // unix nanoseconds of the last warning
}

// outMsg is one message waiting to be published.
type outMsg struct {
	subject string
	reply   string // a reply subject, or ""
	data    []byte
}

// Start joins the cluster described by cfg: it starts the embedded server
// (embedded mode), connects, and starts the publishing goroutine. It
// returns once the connection is up (embedded) or is being retried in the
// background (external: NATS may start after the node). Stop it with Close.
func Start(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{
		cfg: cfg, log: log.With("node", cfg.NodeName),
		out: make(chan outMsg, cfg.QueueLen), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
		brokers: make(map[*Broker]struct{}),
		origin:  newOrigin(cfg.NodeName),
		seen:    make(map[string]time.Time), down: make(map[string]struct{}),
		hbDone: make(chan struct{}),
	}
	opts := []nats.Option{
		nats.Name("realtime-" + cfg.NodeName),
		// A node delivers its own messages locally before publishing them:
		// echoes would be duplicates.
		nats.NoEcho(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			n.drop(classify(err), err, "subject", subject)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.log.Warn("cluster: NATS disconnected; broadcasts to other nodes are buffered, then dropped", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			n.log.Info("cluster: NATS reconnected", "server", c.ConnectedServerName())
		}),
	}
	var url string
	if cfg.Embedded {
		srv, rm, err := startEmbedded(&cfg, n.log)
		if err != nil {
			return nil, err
		}
		n.srv, n.rmDir = srv, rm
		opts = append(opts, nats.InProcessServer(srv))
	} else {
		url = cfg.URL
		opts = append(opts, nats.RetryOnFailedConnect(true))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		n.stopServer()
		return nil, fmt.Errorf("cluster: connect to NATS: %w", err)
	}
	n.nc = nc
	if err := n.startHeartbeats(); err != nil {
		nc.Close()
		n.stopServer()
		return nil, fmt.Errorf("cluster: subscribe to heartbeats: %w", err)
	}
	go n.run()
	n.log.Info("cluster: joined", "embedded", cfg.Embedded, "peers", len(cfg.Peers), "connected", nc.IsConnected())
	return n, nil
}

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.NodeName }

// Broker returns a new broker for the project (namespace) ns; pass it to
// one hub (channels.HubConfig.Broker) and Close it with that hub's stack.
func (n *Node) Broker(ns string) (*Broker, error) {
	if !ValidNamespace(ns) {
		return nil, fmt.Errorf("cluster: project ref %q cannot name a subject", ns)
	}
	b := &Broker{node: n, ns: ns, want: make(map[string]bool), dirty: make(map[string]struct{}), subs: make(map[string]*nats.Subscription)}
	n.mu.Lock()
	n.brokers[b] = struct{}{}
	n.mu.Unlock()
	return b, nil
}

// enqueue hands m to the publishing goroutine; it never blocks. A full
// queue drops m and counts it.
func (n *Node) enqueue(m outMsg) {
	select {
	case n.out <- m:
	default:
		n.drop(dropQueueFull, nil, "queue_len", cap(n.out))
	}
}

// wake tells run that some broker's interest changed.
func (n *Node) wake() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// run is the only goroutine that publishes, subscribes or unsubscribes on
// the connection, so one sender's messages leave in the order they were
// queued.
func (n *Node) run() {
	defer close(n.done)
	for {
		select {
		case m := <-n.out:
			n.publish(m)
		case <-n.kick:
			n.reconcile()
		case <-n.stop:
			// Publish what is already queued: a clean stop loses nothing
			// this node accepted.
			for {
				select {
				case m := <-n.out:
					n.publish(m)
				default:
					n.reconcile()
					return
				}
			}
		}
	}
}

func (n *Node) publish(m outMsg) {
	var err error
	if m.reply == "" {
		err = n.nc.Publish(m.subject, m.data)
	} else {
		err = n.nc.PublishRequest(m.subject, m.reply, m.data)
	}
	if err != nil {
		n.drop(classify(err), err, "subject", m.subject)
		return
	}
	n.published.Add(1)
}

// reconcile brings every broker's subscriptions to its wanted set and
// forgets closed brokers. Called only by run.
func (n *Node) reconcile() {
	for _, b := range n.brokerList() {
		if b.reconcile() {
			n.mu.Lock()
			delete(n.brokers, b)
			n.mu.Unlock()
		}
	}
}

// drop counts a message lost for class c and warns at most every
// warnEvery per class; other occurrences are logged at debug.
func (n *Node) drop(c dropClass, err error, attrs ...any) {
	total := n.drops[c].Add(1)
	now := time.Now().UnixNano()
	last := n.warned[c].Load()
	attrs = append(attrs, "class", c.String(), "total", total)
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	if now-last >= int64(warnEvery) && n.warned[c].CompareAndSwap(last, now) {
		n.log.Warn("cluster: message dropped", attrs...)
		return
	}
	n.log.Debug("cluster: message dropped", attrs...)
}

// Stats is a snapshot of a node's counters.
type Stats struct {
	// Published and Received count messages sent to and taken from NATS.
	Published, Received int64
	// Dropped counts lost messages by class (queue_full, disconnected,
	// too_large, bad_message, slow_consumer, other).
	Dropped map[string]int64
	// Connected says whether the NATS connection is up.
	Connected bool
	// Routes is the embedded server's route count (0 when external).
	Routes int
	// Isolated says whether the node is cut off from the other nodes
	// (Node.Isolated).
	Isolated bool
}

// Stats returns the node's counters. Safe for concurrent use.
func (n *Node) Stats() Stats {
	s := Stats{Published: n.published.Load(), Received: n.received.Load(), Dropped: make(map[string]int64), Connected: n.nc.IsConnected(), Isolated: n.isolated.Load()}
	for c := dropClass(0); c < numDropClasses; c++ {
		s.Dropped[c.String()] += n.drops[c].Load()
	}
	if n.srv != nil {
		s.Routes = n.srv.NumRoutes()
	}
	return s
}

// Close publishes what is queued, unsubscribes, closes the connection and
// stops the embedded server. It blocks until done and is idempotent.
func (n *Node) Close() {
	n.once.Do(func() {
		n.mu.Lock()
		for b := range n.brokers {
			b.markClosed()
		}
		n.mu.Unlock()
		close(n.stop)
		<-n.hbDone
		<-n.done
		if err := n.nc.FlushTimeout(2 * time.Second); err != nil && n.nc.IsConnected() {
			n.log.Warn("cluster: flush at close", "err", err)
		}
		n.nc.Close()
		n.stopServer()
		n.log.Info("cluster: left")
	})
}

// stopServer stops the embedded server, if any, and removes its temporary
// JetStream directory.
func (n *Node) stopServer() {
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.rmDir()
}
