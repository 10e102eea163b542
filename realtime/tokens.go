package realtime

import (
	"sync"
	"time"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
)

// tokenCache remembers verified tokens, so that the thousands of
// connections and joins that carry the same apikey or user token share one
// verification and one copy of the claims. An entry is used only while the
// token has not expired; anything else goes through the verifier again,
// which produces the exact error.
type tokenCache struct {
	mu      sync.Mutex // guards entries
	entries map[string]*verified
}

// verified is a token's claims and the identity derived from them; both
// are immutable and shared.
type verified struct {
	token    string // the token itself, one shared copy
	claims   *auth.Claims
	identity *channels.Identity
}

// maxCachedTokens bounds the cache; when full it starts over.
const maxCachedTokens = 50000

// verify returns the token's claims and identity, from the cache when the
// token was verified before and is still valid.
func (s *Server) verify(token string) (*verified, error) {
	c := &s.tokens
	c.mu.Lock()
	v := c.entries[token]
	c.mu.Unlock()
	if v != nil && time.Now().Before(v.claims.Exp) {
		return v, nil
	}
	claims, err := s.verifier.Verify(token)
	if err != nil {
		return nil, err
	}
	// Keep only what the transport uses; the decoded claims map is the
	// largest part of a verified token.
	claims = &auth.Claims{Role: claims.Role, Sub: claims.Sub, Exp: claims.Exp, Raw: claims.Raw}
	v = &verified{token: token, claims: claims, identity: identityOf(claims)}
	c.mu.Lock()
	if c.entries == nil || len(c.entries) >= maxCachedTokens {
		c.entries = make(map[string]*verified)
	}
	c.entries[token] = v
	c.mu.Unlock()
	return v, nil
}
