package realtime

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/auth/policy"
	"github.com/openrealtime/realtime/channels"
)

// PrivateAuthorizer evaluates the realtime.messages policies of private
// channels (docs/protocol.md §9.2); *policy.Prober implements it. Both
// methods may block on the database.
type PrivateAuthorizer interface {
	// Read probes broadcast (and, when r.Presence, presence) read.
	Read(ctx context.Context, r *policy.Request) (broadcast, presence bool, err error)
	// Write probes broadcast and presence write.
	Write(ctx context.Context, r *policy.Request) (broadcast, presence bool, err error)
}

// closeReasonUnauthorized closes a private channel that lost its read
// permission: a system error and phx_close.
const closeReasonUnauthorized = channels.ReasonTokenInvalid

// probeTimeout bounds one probe.
const probeTimeout = 5 * time.Second

// tri is an unknown, granted or denied permission.
type tri uint8

const (
	unknown tri = iota
	granted
	denied
)

func triOf(b bool) tri {
	if b {
		return granted
	}
	return denied
}

// privatePerms is the cached authorization of one private channel
// incarnation (docs/protocol.md §9.2).
type privatePerms struct {
	mu sync.Mutex // guards every field below
	// the four permissions; unknown until probed
	bRead, pRead, bWrite, pWrite tri
	// failure is why the last probe failed ("" when it did not) and
	// failedProbe which one it was ("read" or "write"); logged, kept for
	// the inspector.
	failure, failedProbe string
}

// xHeaders returns the request's x-* headers with lower-case names, what
// a private channel's policies see as request.headers.
func xHeaders(r *http.Request) map[string]string {
	var out map[string]string
	for k, v := range r.Header {
		lk := strings.ToLower(k)
		if !strings.HasPrefix(lk, "x-") || len(v) == 0 {
			continue
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[lk] = strings.Join(v, ",")
	}
	return out
}

// allHeaders returns every request header with lower-case names (REST
// broadcasts show all of them to the policies).
func allHeaders(r *http.Request) map[string]string {
	out := make(map[string]string, len(r.Header))
	for k, v := range r.Header {
		out[strings.ToLower(k)] = strings.Join(v, ",")
	}
	return out
}

// unauthorizedRead is the join error and close text of a channel whose
// read permission is missing (docs/protocol.md §9.2).
func unauthorizedRead(name string) string {
	return "Unauthorized: You do not have permissions to read from this Channel topic: " + name
}

// probeRefusal maps a probe failure to the join error (docs/protocol.md §7.5).
func probeRefusal(name string, err error) *refusal {
	switch {
	case errors.Is(err, policy.ErrMissingPartition):
		return &refusal{reason: "MissingPartition: Realtime was unable to find the expected messages partition", status: 500, message: "MissingPartition"}
	case errors.Is(err, policy.ErrUnavailable):
		return &refusal{reason: "UnableToConnectToProject: Realtime was unable to connect to the project database", status: 503, message: "UnableToConnectToProject"}
	}
	return &refusal{reason: unauthorizedRead(name), status: 403, message: "Unauthorized"}
}

// privateRequest builds the probe request of a session for topic name.
func (ss *session) privateRequest(v *verified, name string, presence bool) *policy.Request {
	return &policy.Request{Role: v.claims.Role, Sub: v.claims.Sub, Claims: v.claims.Raw, Topic: name, Headers: ss.headers, Presence: presence}
}

// authorizePrivate runs the read probe of a private join. Without an
// authorizer (no database) only service_role may join.
func (ss *session) authorizePrivate(sp *channelSpec, v *verified) (*privatePerms, *refusal) {
	az := ss.srv.cfg.Private
	if az == nil {
		if !ss.srv.privateAllowed(v.claims) {
			return nil, &refusal{reason: unauthorizedRead(sp.name), status: 403, message: "Unauthorized"}
		}
		return &privatePerms{bRead: granted, pRead: granted, bWrite: granted, pWrite: granted}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	b, p, err := az.Read(ctx, ss.privateRequest(v, sp.name, sp.presence))
	privateStats.probe("read", err)
	if err != nil {
		ss.logger().Info("private channel read probe failed", "topic", sp.topic, "err", err)
		return nil, probeRefusal(sp.name, err)
	}
	if !b && !p {
		ss.logger().Debug("private join refused", "topic", sp.topic, "role", v.claims.Role)
		return nil, &refusal{reason: unauthorizedRead(sp.name), status: 403, message: "Unauthorized"}
	}
	perms := &privatePerms{bRead: triOf(b)}
	if sp.presence {
		perms.pRead = triOf(p)
	}
	return perms, nil
}

// applyPerms makes a channel's subscription follow its read permissions:
// broadcasts only with broadcast read, presence only with presence read.
func applyPerms(ch *channelState) {
	if ch.perms == nil {
		return
	}
	ch.perms.mu.Lock()
	bRead, pRead := ch.perms.bRead, ch.perms.pRead
	ch.perms.mu.Unlock()
	ch.sub.SetBroadcastMuted(bRead != granted)
	if pRead == denied {
		ch.sub.SetPresence(false)
	}
}

// canWrite reports whether ch may write ext ("broadcast" or "presence"),
// running the write probe the first time (docs/protocol.md §9.2). Public
// channels may always write.
func (ss *session) canWrite(ch *channelState, ext string) bool {
	p := ch.perms
	if p == nil {
		return true
	}
	p.mu.Lock()
	w := p.bWrite
	if ext == "presence" {
		w = p.pWrite
	}
	p.mu.Unlock()
	if w != unknown {
		return w == granted
	}
	az := ss.srv.cfg.Private
	if az == nil {
		return false
	}
	ss.mu.Lock()
	tok := ch.token
	ss.mu.Unlock()
	v, err := ss.srv.verify(tok)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	b, pr, err := az.Write(ctx, ss.privateRequest(v, ch.sub.Name, false))
	privateStats.probe("write", err)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.failure, p.failedProbe = err.Error(), "write"
		ss.logger().Info("private channel write probe failed", "topic", ch.sub.Topic, "err", err)
		return false
	}
	p.bWrite, p.pWrite = triOf(b), triOf(pr)
	if p.failedProbe == "write" {
		p.failure, p.failedProbe = "", ""
	}
	if ext == "presence" {
		return pr
	}
	return b
}

// recheckPrivate re-runs the read probe after an access_token change
// (docs/protocol.md §9.2): cached write permissions are forgotten, and a
// channel that lost its read permission is closed with the texts of §9.2.
// It reports whether the channel is still open.
func (ss *session) recheckPrivate(ch *channelState, v *verified) bool {
	p := ch.perms
	az := ss.srv.cfg.Private
	if p == nil {
		return true
	}
	if az == nil {
		// Without a database only service_role reads private channels.
		if ss.srv.privateAllowed(v.claims) {
			return true
		}
		ss.logger().Info("private channel lost read permission; closing", "topic", ch.sub.Topic, "role", v.claims.Role)
		ss.closeChannel(ch, "You do not have permissions to read from this Channel topic: "+ch.sub.Name, closeReasonUnauthorized)
		return false
	}
	p.mu.Lock()
	oldB, oldP := p.bRead, p.pRead
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	b, pr, err := az.Read(ctx, ss.privateRequest(v, ch.sub.Name, oldP != unknown))
	privateStats.probe("read", err)
	if err != nil {
		b, pr = false, false
	}
	p.mu.Lock()
	p.bRead, p.bWrite, p.pWrite = triOf(b), unknown, unknown
	if oldP != unknown {
		p.pRead = triOf(pr)
	}
	// Cached writes are forgotten, and so is any earlier failure.
	p.failure, p.failedProbe = "", ""
	if err != nil {
		p.failure, p.failedProbe = err.Error(), "read"
	}
	p.mu.Unlock()
	switch {
	case !b && !pr:
		ss.logger().Info("private channel lost read permission; closing", "topic", ch.sub.Topic, "err", err)
		ss.closeChannel(ch, "You do not have permissions to read from this Channel topic: "+ch.sub.Name, closeReasonUnauthorized)
		return false
	case (oldB == granted && !b) || (oldP == granted && !pr):
		ss.logger().Info("private channel lost a read permission; closing", "topic", ch.sub.Topic)
		ss.closeChannel(ch, "You no longer have permission to read from this Channel topic: "+ch.sub.Name, closeReasonUnauthorized)
		return false
	}
	applyPerms(ch)
	return true
}

// restCanWrite runs the broadcast write probe of a REST broadcast to the
// private topic name with the caller's claims and all request headers
// (docs/protocol.md §9.2); probed, when not nil, remembers the answers of
// one request per topic.
func (s *Server) restCanWrite(r *http.Request, claims *auth.Claims, name string, probed map[string]bool) bool {
	if ok, seen := probed[name]; seen {
		return ok
	}
	ok := false
	if s.cfg.Private == nil {
		ok = s.privateAllowed(claims)
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
		b, _, err := s.cfg.Private.Write(ctx, &policy.Request{Role: claims.Role, Sub: claims.Sub, Claims: claims.Raw, Topic: name, Headers: allHeaders(r)})
		cancel()
		privateStats.probe("write", err)
		if err != nil {
			s.log.Info("REST private broadcast probe failed", "topic", name, "err", err)
		}
		ok = err == nil && b
	}
	if probed != nil {
		probed[name] = ok
	}
	return ok
}

// afterTrack keeps presence delivery of a private channel behind presence
// read (docs/protocol.md §9.2): a track turns presence on, so a read that
// was never checked (presence disabled at join) is probed now, and without
// it presence events stay withheld.
func (ss *session) afterTrack(ch *channelState) {
	p := ch.perms
	if p == nil {
		return
	}
	p.mu.Lock()
	r := p.pRead
	p.mu.Unlock()
	if r == unknown && ss.srv.cfg.Private != nil {
		ss.mu.Lock()
		tok := ch.token
		ss.mu.Unlock()
		if v, err := ss.srv.verify(tok); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
			_, pr, err := ss.srv.cfg.Private.Read(ctx, ss.privateRequest(v, ch.sub.Name, true))
			cancel()
			privateStats.probe("read", err)
			if err == nil {
				r = triOf(pr)
				p.mu.Lock()
				p.pRead = r
				p.mu.Unlock()
			}
		}
	}
	if r != granted {
		ch.sub.SetPresence(false)
	}
}
