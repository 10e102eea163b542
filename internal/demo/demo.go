// Package demo holds the demo schema and keys of `realtime dev`, also used
// by tests: Supabase-style roles, auth.uid(), an owner-only table under RLS
// and an open table, all in the supabase_realtime publication.
package demo

import (
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"time"

	"github.com/openrealtime/realtime/auth"
)

// SchemaSQL is the demo schema; running it twice is harmless.
//
//go:embed schema.sql
var SchemaSQL string

// PrivateSQL is the demo private room (a membership policy on
// realtime.messages and a table broadcasting its changes); it needs the
// realtime schema and the demo users, and running it twice is harmless.
//
//go:embed private.sql
var PrivateSQL string

// Keys are signed JWTs for the demo.
type Keys struct {
	// Secret is the HS256 secret that signs them.
	Secret string
	// Anon is the anon api key.
	Anon string
	// Service is the service_role key.
	Service string
	// User is an authenticated user's token and UserID its sub.
	User, UserID string
	// User2 is a second user's token and User2ID its sub.
	User2, User2ID string
}

// NewSecret returns a random 32-byte hex secret.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// MakeKeys signs the demo keys with secret, valid for ttl.
func MakeKeys(secret string, ttl time.Duration) (Keys, error) {
	k := Keys{Secret: secret, UserID: "11111111-1111-4111-8111-111111111111", User2ID: "22222222-2222-4222-8222-222222222222"}
	now := time.Now()
	claims := []struct {
		dst *string
		c   map[string]any
	}{
		{&k.Anon, map[string]any{"role": "anon"}},
		{&k.Service, map[string]any{"role": "service_role"}},
		{&k.User, map[string]any{"role": "authenticated", "sub": k.UserID, "email": "alice@example.com"}},
		{&k.User2, map[string]any{"role": "authenticated", "sub": k.User2ID, "email": "bob@example.com"}},
	}
	for _, x := range claims {
		x.c["exp"] = now.Add(ttl).Unix()
		x.c["iat"] = now.Unix()
		x.c["iss"] = "supabase-demo"
		t, err := auth.SignHS256([]byte(secret), x.c)
		if err != nil {
			return Keys{}, err
		}
		*x.dst = t
	}
	return k, nil
}
