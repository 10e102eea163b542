package realtime

import (
	"net/http"
	"strings"
)

// credentials are the tokens a request carries, read in one order by every
// endpoint (docs/protocol.md §1.2):
//
//   - the API key: header x-api-key (set by a gateway), header apikey, then
//     the apikey query parameter;
//   - the user token: Authorization: Bearer, then the access_token query
//     parameter. Opaque sb_… keys are not user tokens.
type credentials struct {
	apiKey string
	user   string
}

// readCredentials reads the credentials of r.
func readCredentials(r *http.Request) credentials {
	q := r.URL.Query()
	c := credentials{apiKey: r.Header.Get("x-api-key")}
	if c.apiKey == "" {
		c.apiKey = r.Header.Get("apikey")
	}
	if c.apiKey == "" {
		c.apiKey = q.Get("apikey")
	}
	c.apiKey = strings.TrimSpace(c.apiKey)
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		c.user = strings.TrimSpace(a[7:])
	}
	if c.user == "" {
		c.user = q.Get("access_token")
	}
	if isOpaqueKey(c.user) {
		c.user = ""
	}
	return c
}

// token is the token that decides what the request may see: the user
// token, or the API key when there is none.
func (c credentials) token() string {
	if c.user != "" {
		return c.user
	}
	return c.apiKey
}

// withJoinToken returns c with the user token a join payload carries, when
// it carries one.
func (c credentials) withJoinToken(tok string) credentials {
	if tok != "" && !isOpaqueKey(tok) {
		c.user = tok
	}
	return c
}

// isOpaqueKey reports whether tok is one of the new opaque API keys
// (sb_publishable_…, sb_secret_…), which are not JWTs.
func isOpaqueKey(tok string) bool { return strings.HasPrefix(tok, "sb_") }
