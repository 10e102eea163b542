package cluster

import (
	"context"

	"github.com/nats-io/nats.go"
)

// Inspector queries (docs/cluster.md "Inspector"): a node asks every other
// node running a project a question on the project's query subject and
// gathers the answers for a short while. The package does not read the
// questions or answers; the inspector encodes both.

// queryBuffer bounds the answers one query keeps waiting for its reader.
const queryBuffer = 64

// Answer is one node's answer to a query.
type Answer struct {
	// Node is the answering node's name; Origin its current run.
	Node, Origin string
	// Data is the answer as the node's query handler returned it.
	Data []byte
}

// query is one of this node's queries, from Query to the run goroutine.
type query struct {
	data    []byte
	answers chan Answer
	sent    chan *nats.Subscription // the reply subscription, or nil when sending failed
}

// querySubject is the subject of project ns's inspector queries.
func querySubject(ns string) string { return "rt." + ns + ".q" }

// SetQueryHandler installs fn, which answers the other nodes' inspector
// queries about this project (called on a NATS delivery goroutine; it
// must not block long). The node subscribes to the project's query
// subject soon after.
func (b *Broker) SetQueryHandler(fn func(q []byte) []byte) {
	b.mu.Lock()
	b.qh = fn
	b.mu.Unlock()
	b.node.wake()
}

// Query sends q to every other node running this project and returns the
// answers that arrived before ctx ended, or sooner, once every live peer
// (Node.Peers) has answered. A node without the project answers nothing.
func (b *Broker) Query(ctx context.Context, q []byte) []Answer {
	want := b.node.peerCount()
	if want == 0 {
		return nil
	}
	qr := &query{data: q, answers: make(chan Answer, queryBuffer), sent: make(chan *nats.Subscription, 1)}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.pending = append(b.pending, qr)
	b.mu.Unlock()
	b.node.wake()
	var sub *nats.Subscription
	select {
	case sub = <-qr.sent:
	case <-ctx.Done():
		// The run goroutine may still send it: its reply subscription is
		// then dropped when it sees the query abandoned.
		go func() {
			if s := <-qr.sent; s != nil {
				s.Unsubscribe()
			}
		}()
		return nil
	}
	if sub == nil {
		return nil
	}
	defer sub.Unsubscribe()
	var out []Answer
	seen := map[string]bool{}
	for len(out) < want {
		select {
		case a := <-qr.answers:
			if !seen[a.Origin] {
				seen[a.Origin] = true
				out = append(out, a)
			}
		case <-ctx.Done():
			return out
		}
	}
	return out
}

// reconcileQueries subscribes to or unsubscribes from the project's query
// subject and sends the pending queries. Called only by the node's run
// goroutine (from reconcile).
func (b *Broker) reconcileQueries(closed, answering bool, pending []*query) {
	nc := b.node.nc
	switch {
	case (closed || !answering) && b.qsub != nil:
		if err := b.qsub.Unsubscribe(); err != nil {
			b.node.log.Debug("cluster: unsubscribe from queries", "err", err)
		}
		b.qsub = nil
	case !closed && answering && b.qsub == nil:
		s, err := nc.Subscribe(querySubject(b.ns), b.answer)
		if err != nil {
			b.node.drop(classify(err), err, "query_subscribe", true)
		} else {
			b.qsub = s
		}
	}
	for _, q := range pending {
		if closed {
			q.sent <- nil
			continue
		}
		q.sent <- b.send(q)
	}
}

// send subscribes q's reply inbox and publishes q; nil when it could not.
func (b *Broker) send(q *query) *nats.Subscription {
	nc := b.node.nc
	inbox := nats.NewInbox()
	sub, err := nc.Subscribe(inbox, func(m *nats.Msg) {
		kind, _, fields, err := decodeMessage(m.Data)
		if err != nil || kind != kindAnswer {
			if len(m.Data) > 0 { // an empty one is a status message
				b.node.drop(dropBadMessage, err, "subject", m.Subject)
			}
			return
		}
		origin := string(fields[0])
		select {
		case q.answers <- Answer{Node: originName(origin), Origin: origin, Data: fields[1]}:
		default: // the reader has enough or has gone
		}
	})
	if err != nil {
		b.node.drop(classify(err), err, "query", true)
		return nil
	}
	if err := nc.PublishRequest(querySubject(b.ns), inbox, encodeFields(kindQuery, 0, []byte(b.node.origin), q.data)); err != nil {
		b.node.drop(classify(err), err, "query", true)
		sub.Unsubscribe()
		return nil
	}
	b.node.published.Add(1)
	return sub
}

// answer handles another node's query: the installed handler's answer is
// queued to the query's reply subject.
func (b *Broker) answer(m *nats.Msg) {
	kind, _, fields, err := decodeMessage(m.Data)
	if err != nil || kind != kindQuery {
		b.node.drop(dropBadMessage, err, "subject", m.Subject)
		return
	}
	origin := string(fields[0])
	if origin == b.node.origin || m.Reply == "" {
		return
	}
	b.node.heard(origin)
	b.mu.Lock()
	qh := b.qh
	b.mu.Unlock()
	if qh == nil {
		return
	}
	b.node.received.Add(1)
	b.node.enqueue(outMsg{subject: m.Reply, data: encodeFields(kindAnswer, 0, []byte(b.node.origin), qh(fields[1]))})
}
