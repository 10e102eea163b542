// Package cluster carries a project's broadcasts between the nodes of a
// realtime cluster over NATS (docs/cluster.md).
//
// A [Node] owns this process's NATS connection, and in embedded mode the
// in-process nats-server that routes to the other nodes. One goroutine, the
// node's run loop, is the only caller of Publish, Subscribe and Unsubscribe
// on that connection: producers hand it messages through a bounded queue and
// interest changes through a dirty set, so a hub never blocks on NATS.
//
// A [Broker] is one project's [channels.InterestBroker] and
// [channels.PresenceBroker]: it delivers a broadcast or presence diff to
// this node's subscribers at once, queues it for the other nodes on the
// subject rt.<project>.t.<topic token>, and subscribes to a topic's subject
// only while this node has subscribers for it, taking a snapshot of the
// other nodes' presence there when it starts. Messages that arrive from
// NATS are fanned out locally and never published again. Heartbeats on
// rt.hb tell which nodes are alive; a silent node's presence leaves after
// 3 s (heartbeat.go). Each heartbeat carries the node's report of its
// projects (report.go: clients, rates, slot), which the other nodes keep
// and sum for the cluster-wide limits (load.go). The inspector asks the
// nodes of a project about a channel on rt.<project>.q (query.go).
//
// The run goroutine also subscribes the reply inboxes of snapshots and
// queries; those are unsubscribed by whoever ends the wait (a timer, the
// querying goroutine), which orders nothing.
//
// Lock order: channels' hub shard lock → Broker.mu. Broker.mu, Node.mu,
// Node.seenMu and reporting.mu are leaves; none is held during NATS calls
// or while calling into the hub or a report function.
package cluster
