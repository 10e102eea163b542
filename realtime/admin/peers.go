package admin

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/openrealtime/realtime/channels"
)

// A channel's subscribers on the other nodes of a cluster (docs/cluster.md
// "Inspector"): the channel view asks every other node running the project
// and shows what each answered within peerTimeout.

// peerTimeout bounds how long the channel view waits for the other nodes.
const peerTimeout = 300 * time.Millisecond

// maxPeerSubscribers bounds the subscribers one node lists in its answer;
// SubscriberCount still counts them all.
const maxPeerSubscribers = 100

// PeerAnswer is one other node's raw answer to a query.
type PeerAnswer struct {
	// Node is the node's name, Origin its current run.
	Node, Origin string
	// Data is what its inspector's AnswerQuery returned.
	Data []byte
}

// NodeChannel is a channel as another node sees it: its channels (public
// and/or private of the name) and their subscribers there.
type NodeChannel struct {
	// Node is the node's name, Origin its current run.
	Node   string `json:"node"`
	Origin string `json:"origin"`
	// Channels are the node's channels of the name (empty: none there).
	Channels []channels.TopicStats `json:"channels"`
	// SubscriberCount counts the node's subscribers of those channels.
	SubscriberCount int `json:"subscriber_count"`
	// Subscribers lists up to 100 of them, sorted by id (ids are the
	// node's own).
	Subscribers []channels.SubscriberStats `json:"subscribers"`
	// Error is set when the node's answer could not be read.
	Error string `json:"error,omitempty"`
}

// peerQuery is the query a node sends: which channel.
type peerQuery struct {
	Channel string `json:"channel"`
}

// SetPeers installs ask, which sends a query to the other nodes running
// this project and returns their answers before ctx ends; the channel view
// then includes their subscribers. nil (the default) asks nobody.
func (i *Inspector) SetPeers(ask func(ctx context.Context, q []byte) []PeerAnswer) {
	if ask == nil {
		i.peers.Store(nil)
		return
	}
	i.peers.Store(&ask)
}

// AnswerQuery answers another node's query from this node's hub: the
// channel it names, as a NodeChannel without the node's name (the asking
// node knows it). An unreadable query gets an answer with Error.
func (i *Inspector) AnswerQuery(q []byte) []byte {
	var pq peerQuery
	var nc NodeChannel
	if err := json.Unmarshal(q, &pq); err != nil || pq.Channel == "" {
		nc.Error = "unreadable query"
	} else {
		topics, subs, _ := i.hub.Subscribers(pq.Channel)
		topics, subs = dedupe(topics, subs)
		nc.Channels, nc.SubscriberCount = topics, len(subs)
		nc.Subscribers = subs[:min(len(subs), maxPeerSubscribers)]
	}
	out, _ := json.Marshal(nc)
	return out
}

// peerChannels asks the other nodes about channel name; nil when this node
// is not in a cluster.
func (i *Inspector) peerChannels(ctx context.Context, name string) []NodeChannel {
	p := i.peers.Load()
	if p == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	q, _ := json.Marshal(peerQuery{Channel: name})
	answers := (*p)(ctx, q)
	out := make([]NodeChannel, 0, len(answers))
	for _, a := range answers {
		var nc NodeChannel
		if err := json.Unmarshal(a.Data, &nc); err != nil {
			nc = NodeChannel{Error: "unreadable answer: " + err.Error()}
		}
		nc.Node, nc.Origin = a.Node, a.Origin
		if nc.Channels == nil {
			nc.Channels = []channels.TopicStats{}
		}
		if nc.Subscribers == nil {
			nc.Subscribers = []channels.SubscriberStats{}
		}
		out = append(out, nc)
	}
	sortNodeChannels(out)
	return out
}

// anyChannel reports whether some node has a channel of the name.
func anyChannel(nodes []NodeChannel) bool {
	for _, n := range nodes {
		if len(n.Channels) > 0 {
			return true
		}
	}
	return false
}

// sortNodeChannels orders nodes by name, then origin.
func sortNodeChannels(nodes []NodeChannel) {
	sort.Slice(nodes, func(a, b int) bool {
		if nodes[a].Node != nodes[b].Node {
			return nodes[a].Node < nodes[b].Node
		}
		return nodes[a].Origin < nodes[b].Origin
	})
}
