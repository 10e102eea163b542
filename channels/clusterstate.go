package channels

// System texts of a node cut off from the cluster and back (docs/cluster.md
// "Failure behaviour implemented so far", docs/protocol.md §7.3).
const (
	// IsolatedMessage is the system error every subscriber of a node gets
	// when the node hears no other node.
	IsolatedMessage = "Realtime lost contact with the other nodes of the cluster: broadcasts and presence reach only the clients of this node"
	// RejoinedMessage is the system ok that follows when it hears one again.
	RejoinedMessage = "Realtime is in contact with the other nodes of the cluster again"
)

// clusterState sends every subscriber of every topic on this node a system
// message (extension "system"): an error when the node is cut off from the
// others, ok when it is back. The channels stay joined.
func (h *Hub) clusterState(isolated bool) {
	status, msg := "ok", RejoinedMessage
	if isolated {
		status, msg = "error", IsolatedMessage
	}
	n := 0
	for _, t := range h.allTopics() {
		for _, s := range *t.subs.Load() {
			s.deliver(s.Encoder.EncodeSystem(s.Topic, systemJSON("system", status, msg, s.Name)))
			n++
		}
	}
	h.log.Info("cluster state told to subscribers", "isolated", isolated, "subscribers", n)
}
