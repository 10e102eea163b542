package realtime

import (
	"github.com/openrealtime/realtime/channels"
)

// inspectPerms lets the inspector show ch's permissions (private channels
// only). It runs before ch's subscription joins the hub.
func inspectPerms(ch *channelState) {
	p, sub := ch.perms, ch.sub
	if p == nil {
		return
	}
	sub.Perms = func() *channels.Permissions {
		role := ""
		if id := sub.Identity(); id != nil {
			role = id.Role
		}
		return p.inspect(role, sub.Name)
	}
}

// inspect is the inspector's view of p for a subscriber acting as role on
// topic name: every permission not granted comes with why
// (docs/protocol.md §9.2).
func (p *privatePerms) inspect(role, name string) *channels.Permissions {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := &channels.Permissions{
		BroadcastRead: p.bRead.String(), BroadcastWrite: p.bWrite.String(),
		PresenceRead: p.pRead.String(), PresenceWrite: p.pWrite.String(),
		Failure: p.failure, Why: map[string]string{},
	}
	if role == "" {
		role = "(no role)"
	}
	explain := func(key string, t tri, probe, verb, ext, unprobed string) {
		switch {
		case t == granted:
		case p.failedProbe == probe && p.failure != "":
			out.Why[key] = "the " + probe + " probe failed: " + p.failure
		case t == unknown:
			out.Why[key] = unprobed
		default:
			out.Why[key] = "no " + verb + " policy on realtime.messages admits role " + role +
				" for extension '" + ext + "' on topic '" + name + "'"
		}
	}
	explain("broadcast_read", p.bRead, "read", "SELECT", "broadcast", "not probed")
	explain("broadcast_write", p.bWrite, "write", "INSERT", "broadcast", "not probed yet: the first broadcast probes it")
	explain("presence_read", p.pRead, "read", "SELECT", "presence", "not probed: presence was not enabled at join")
	explain("presence_write", p.pWrite, "write", "INSERT", "presence", "not probed yet: the first track probes it")
	if len(out.Why) == 0 {
		out.Why = nil
	}
	return out
}

// String is the inspector's name of t.
func (t tri) String() string {
	switch t {
	case granted:
		return channels.PermGranted
	case denied:
		return channels.PermDenied
	}
	return channels.PermUnknown
}
