package realtime

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// MaxTopicBytes is the longest topic ("realtime:" and the channel name)
// a client may join: every topic must fit the one-byte length of a binary
// broadcast frame (docs/protocol.md §3.1). A longer one is a join error.
const MaxTopicBytes = 255

// Texts of the connection and resume caps (docs/protocol.md §1.2).
const (
	msgTooManyConnections = "Too many connected users"
	msgTooManyResumes     = "Too many concurrent resumes"
	reasonTopicTooLong    = "TopicNameTooLong: Topic names are limited to 255 bytes"
)

// admission counts open connections, in total and per client address,
// for the connection caps (docs/operations.md "Connection limits").
type admission struct {
	mu    sync.Mutex     // guards open, perIP
	open  int            // WebSocket connections and SSE streams admitted
	perIP map[string]int // admitted connections by client address
}

// admit reserves a connection slot for r's client address. It answers the
// request with 429 and returns ok=false when a cap is reached; otherwise
// release must be called once when the connection ends.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	ip := clientAddr(r)
	a := &s.admission
	// On a node of a cluster the other nodes' clients count too.
	others := s.remoteLoad().Clients
	a.mu.Lock()
	over := a.open+others >= s.limits().MaxConnections ||
		(s.cfg.MaxConnectionsPerIP > 0 && a.perIP[ip] >= s.cfg.MaxConnectionsPerIP)
	if !over {
		a.open++
		if a.perIP == nil {
			a.perIP = make(map[string]int)
		}
		a.perIP[ip]++
	}
	a.mu.Unlock()
	if over {
		s.metrics.connsRefused.Add(1)
		s.log.Debug("connection refused: connection cap reached", "remote_addr", ip)
		w.Header().Set("Connection", "close")
		writeJSONError(w, http.StatusTooManyRequests, msgTooManyConnections)
		return nil, false
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			a.open--
			if a.perIP[ip]--; a.perIP[ip] <= 0 {
				delete(a.perIP, ip)
			}
			a.mu.Unlock()
		})
	}, true
}

// clientAddr is the address a connection is counted under: the TCP peer,
// or, when the peer is a proxy on the same host (loopback), the first
// X-Forwarded-For entry. A remote client cannot choose its own address by
// sending the header.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		if f := r.Header.Get("X-Forwarded-For"); f != "" {
			if first := strings.TrimSpace(strings.Split(f, ",")[0]); first != "" {
				return first
			}
		}
	}
	return host
}

// resumeGate bounds SSE resumes: at most MaxResumesPerUser concurrent per
// identity (more are refused) and MaxResumes running at once in the
// process (more wait), each slot resting after a resume (resumeRest), so
// that a flood of resumes never takes more than a fraction of a core from
// the live fan-out.
type resumeGate struct {
	slots chan struct{} // one token per running resume (or resting slot)
	// after runs release once a slot has rested for d (time.AfterFunc;
	// tests replace it).
	after func(d time.Duration, release func())

	mu     sync.Mutex     // guards byUser
	byUser map[string]int // resumes admitted (waiting or running) by identity
}

// errTooManyResumes is returned when an identity has too many resumes.
var errTooManyResumes = errors.New("realtime: too many concurrent resumes")

// enterResume admits one resume for user and waits for a process-wide
// slot. On success the caller runs the resume and calls done once.
func (s *Server) enterResume(ctx context.Context, user string) (done func(), err error) {
	g := &s.resumes
	g.mu.Lock()
	if g.byUser[user] >= s.cfg.MaxResumesPerUser {
		g.mu.Unlock()
		return nil, errTooManyResumes
	}
	if g.byUser == nil {
		g.byUser = make(map[string]int)
	}
	g.byUser[user]++
	g.mu.Unlock()
	leave := func() {
		g.mu.Lock()
		if g.byUser[user]--; g.byUser[user] <= 0 {
			delete(g.byUser, user)
		}
		g.mu.Unlock()
	}
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
	start := time.Now()
	return func() {
		// The slot rests resumeRest times as long as the resume ran
		// before the next one may use it, so resumes back to back take
		// at most 1/(1+resumeRest) of a core per slot.
		after := g.after
		if after == nil {
			after = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
		}
		after(time.Duration(float64(time.Since(start))*resumeRest), func() { <-g.slots; leave() })
	}, nil
}

// resumeRest is how long a resume slot stays taken after a resume, as a
// multiple of the resume's own duration (docs/sse.md).
const resumeRest = 3

// joinBucket is a connection's join token bucket: it refills at rate
// tokens per second up to burst, and a join takes one token, so a page
// that joins all its channels at load is served at once while a client
// that keeps joining is held to the rate (docs/protocol.md §7.6). It is
// not safe for concurrent use; the read loop owns it.
type joinBucket struct {
	tokens float64
	last   time.Time // zero until the first join: the bucket starts full
}

// allow takes a token at now and reports whether there was one.
func (b *joinBucket) allow(now time.Time, rate float64, burst int) bool {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(float64(burst), b.tokens+el*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
