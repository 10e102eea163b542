package main

import (
	"fmt"
	"time"

	"github.com/openrealtime/realtime/auth"
)

// userID is the deterministic sub of bench user i, so repeated runs against
// one database address the same users.
func userID(i int) string {
	return fmt.Sprintf("00000000-0000-4000-8000-%012x", i)
}

// tokens are the minted credentials of a run.
type tokens struct {
	apikey string   // connection apikey (anon unless given)
	users  []string // user i's access token
}

// mintTokens signs one HS256 token per user (role authenticated, sub
// userID(i)) and, unless apikey is given, an anon apikey.
func mintTokens(secret, apikey string, users int, ttl time.Duration) (*tokens, error) {
	now := time.Now()
	claims := func(role string) map[string]any {
		return map[string]any{"role": role, "iat": now.Unix(), "exp": now.Add(ttl).Unix(), "iss": "realtime-bench"}
	}
	t := &tokens{apikey: apikey, users: make([]string, users)}
	if t.apikey == "" {
		k, err := auth.SignHS256([]byte(secret), claims("anon"))
		if err != nil {
			return nil, fmt.Errorf("bench: mint anon key: %w", err)
		}
		t.apikey = k
	}
	for i := range t.users {
		c := claims("authenticated")
		c["sub"] = userID(i)
		c["aud"] = "authenticated"
		tok, err := auth.SignHS256([]byte(secret), c)
		if err != nil {
			return nil, fmt.Errorf("bench: mint user %d: %w", i, err)
		}
		t.users[i] = tok
	}
	return t, nil
}
