// Package cluster carries a project's broadcasts between the nodes of a
// realtime cluster over NATS (docs/cluster.md).
//
// A [Node] owns this process's NATS connection, and in embedded mode the
// in-process nats-server that routes to the other nodes. One goroutine, the
// node's run loop, is the only caller of Publish, Subscribe and Unsubscribe
// on that connection: producers hand it messages through a bounded queue and
// interest changes through a dirty set, so a hub never blocks on NATS.
//
// A [Broker] is one project's [channels.InterestBroker]: it delivers a
// broadcast to this node's subscribers at once, queues it for the other
// nodes on the subject rt.<project>.bc.<topic token>, and subscribes to a
// topic's subject only while this node has subscribers for it. Messages that
// arrive from NATS are fanned out locally and never published again.
// Presence diffs stay on the node that made them (presence is per node in
// this version).
//
// Lock order: channels' hub shard lock → Broker.mu. Broker.mu and Node.mu
// are leaves; neither is held during NATS calls.
package cluster
