package realtime

import "sync/atomic"

// metrics counts what the transport does. Each event costs one atomic add
// and no lock or label lookup; the Prometheus collector (metrics_export.go)
// reads the counters on scrape.
type metrics struct {
	connections   atomic.Int64 // open connections, WebSocket and SSE
	connsTotal    atomic.Int64 // WebSocket connections accepted
	channels      atomic.Int64 // channels joined over WebSocket right now
	joins         atomic.Int64 // joins accepted
	joinsRefused  atomic.Int64 // joins answered with an error
	msgsInText    atomic.Int64 // WebSocket text frames received
	msgsInBinary  atomic.Int64 // WebSocket binary frames received
	broadcasts    atomic.Int64 // broadcasts published (WebSocket and REST)
	presenceMsgs  atomic.Int64 // presence track and untrack pushes
	slowConsumers atomic.Int64 // connections closed as slow consumers
	connsRefused  atomic.Int64 // connections refused by a connection cap
	limitHits     atomic.Int64 // events refused by the events/s or presence events/s limit; joins and connections by the joins/s limit
}

func (m *metrics) limitHit() { m.limitHits.Add(1) }

func (m *metrics) slowConsumer() { m.slowConsumers.Add(1) }
func (m *metrics) messageIn(binary bool) {
	if binary {
		m.msgsInBinary.Add(1)
	} else {
		m.msgsInText.Add(1)
	}
}

// channelJoined counts a channel opened over a transport; the joined-channel
// figures count WebSocket channels only (an SSE stream is one channel).
func (m *metrics) channelJoined(kind string) {
	if kind == transportWebSocket {
		m.channels.Add(1)
		m.joins.Add(1)
	}
}

// channelLeft counts a channel closed over a transport.
func (m *metrics) channelLeft(kind string) {
	if kind == transportWebSocket {
		m.channels.Add(-1)
	}
}

func (m *metrics) joinRefused() { m.joinsRefused.Add(1) }
func (m *metrics) broadcast()   { m.broadcasts.Add(1) }
func (m *metrics) presence()    { m.presenceMsgs.Add(1) }
