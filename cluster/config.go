package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strings"
)

// AdvertiseNone as Config.Advertise keeps the embedded server from telling
// other servers where to reach it (docs/cluster.md "Modes").
const AdvertiseNone = "none"

// DefaultClusterName is the embedded servers' cluster name when
// Config.ClusterName is empty.
const DefaultClusterName = "realtime"

// DefaultQueueLen is the outgoing queue's length when Config.QueueLen is 0.
const DefaultQueueLen = 8192

// Config configures a Node. Exactly one of Embedded and URL is set.
type Config struct {
	// NodeName names this node in logs, in NATS and in its replication
	// slot; it must be unique in the cluster and stable across restarts.
	NodeName string
	// Embedded runs a nats-server inside this process.
	Embedded bool
	// ClusterListen is the embedded server's route address (host:port).
	ClusterListen string
	// Peers are the other nodes' route addresses (host:port); this node's
	// own address may be listed too, it is ignored.
	Peers []string
	// ClusterName names the embedded servers' cluster; a server refuses
	// routes from servers of another name. Empty means DefaultClusterName.
	ClusterName string
	// Advertise is the route address other servers are told to dial
	// (behind NAT or in containers); empty means the address they see,
	// AdvertiseNone that nodes dial only their own Peers (no gossip).
	Advertise string
	// ClientListen, when set, opens the embedded server to NATS clients
	// (e.g. the nats CLI) on host:port; empty means a random loopback
	// port (this node itself connects in-process).
	ClientListen string
	// URL is an external NATS server or cluster (comma-separated URLs).
	URL string
	// QueueLen bounds the messages waiting to be published; past it a
	// message is dropped and counted. 0 means DefaultQueueLen.
	QueueLen int
	// StoreDir is where the embedded server keeps JetStream's files (the
	// change hand-off); empty means realtime-jetstream/<node name> under
	// the system's temporary directory.
	StoreDir string
	// Replicas is the hand-off stream's replica count; 0 chooses: 3 for an
	// embedded cluster of three or more nodes, else 1.
	Replicas int
	// Logger receives the node's logs (the embedded server's too); nil
	// discards them.
	Logger *slog.Logger
}

// Validate reports the first problem of c, if any.
func (c Config) Validate() error {
	if c.Embedded == (c.URL != "") {
		return fmt.Errorf("cluster: choose one of an embedded server and a NATS URL")
	}
	if !ValidNodeName(c.NodeName) {
		return fmt.Errorf("cluster: node name must match [a-z0-9_-]{1,32}, not %q", c.NodeName)
	}
	if c.Embedded {
		if _, _, err := net.SplitHostPort(c.ClusterListen); err != nil {
			return fmt.Errorf("cluster: listen address %q: %w", c.ClusterListen, err)
		}
		for _, p := range c.Peers {
			if _, _, err := net.SplitHostPort(p); err != nil {
				return fmt.Errorf("cluster: peer %q: %w", p, err)
			}
		}
		if c.ClusterName != "" && !ValidNodeName(c.ClusterName) {
			return fmt.Errorf("cluster: cluster name must match [a-z0-9_-]{1,32}, not %q", c.ClusterName)
		}
		if c.Advertise != "" && c.Advertise != AdvertiseNone {
			if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
				return fmt.Errorf("cluster: advertise address %q (host:port or %q): %w", c.Advertise, AdvertiseNone, err)
			}
		}
		if c.ClientListen != "" {
			if _, _, err := net.SplitHostPort(c.ClientListen); err != nil {
				return fmt.Errorf("cluster: client listen address %q: %w", c.ClientListen, err)
			}
		}
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("cluster: stream replicas must be 1 to 5, or 0 to choose")
	}
	if c.QueueLen < 0 {
		return fmt.Errorf("cluster: queue length must be positive, or 0 for the default")
	}
	return nil
}

// ValidNodeName reports whether s may name a node: 1–32 of [a-z0-9_-], so
// that it fits a NATS subject token and a replication slot name.
func ValidNodeName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// maxSlotName is PostgreSQL's identifier length limit (NAMEDATALEN - 1).
const maxSlotName = 63

// SlotName is the replication slot a node reads: base with the node's name
// appended, '-' spelled '_' (docs/cluster.md "Database changes"). A base
// too long for both is shortened and suffixed with a hash of itself, so
// distinct bases stay distinct.
func SlotName(base, node string) string {
	suffix := "_" + strings.ReplaceAll(node, "-", "_")
	if len(base)+len(suffix) <= maxSlotName {
		return base + suffix
	}
	sum := sha256.Sum256([]byte(base))
	h := hex.EncodeToString(sum[:4])
	keep := max(maxSlotName-len(suffix)-len(h)-1, 0)
	return base[:min(keep, len(base))] + "_" + h + suffix
}

// ValidNamespace reports whether ns (a project ref) may be a subject token.
func ValidNamespace(ns string) bool {
	if ns == "" || len(ns) > 63 {
		return false
	}
	for _, r := range ns {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// nodes is the number of distinct nodes of an embedded cluster (this node
// and its listed peers), or 0 with an external NATS, whose membership the
// configuration does not tell.
func (c Config) nodes() int {
	if !c.Embedded {
		return 0
	}
	nodes := map[string]bool{c.ClusterListen: true}
	for _, p := range c.Peers {
		nodes[p] = true
	}
	return len(nodes)
}

// replicas is the hand-off stream's replica count: Replicas, or 3 for an
// embedded cluster of three or more distinct nodes (JetStream's quorum
// survives one node then), else 1.
func (c Config) replicas() int {
	if c.Replicas > 0 {
		return c.Replicas
	}
	if c.nodes() >= 3 {
		return 3
	}
	return 1
}
