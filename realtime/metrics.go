package realtime

import "sync/atomic"

// metrics counts what the transport does. The counters are read by the
// inspector and exported by the metrics endpoint.
type metrics struct {
	connections   atomic.Int64 // open connections
	connsTotal    atomic.Int64
	channels      atomic.Int64 // joined channels
	joins         atomic.Int64
	joinsRefused  atomic.Int64
	msgsInText    atomic.Int64
	msgsInBinary  atomic.Int64
	broadcasts    atomic.Int64
	presenceMsgs  atomic.Int64
	slowConsumers atomic.Int64
}

func (m *metrics) slowConsumer() { m.slowConsumers.Add(1) }
func (m *metrics) messageIn(binary bool) {
	if binary {
		m.msgsInBinary.Add(1)
	} else {
		m.msgsInText.Add(1)
	}
}
func (m *metrics) channelJoined() { m.channels.Add(1); m.joins.Add(1) }
func (m *metrics) channelLeft()   { m.channels.Add(-1) }
func (m *metrics) joinRefused()   { m.joinsRefused.Add(1) }
func (m *metrics) broadcast()     { m.broadcasts.Add(1) }
func (m *metrics) presence()      { m.presenceMsgs.Add(1) }
