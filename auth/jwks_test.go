package auth_test

import (
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/openrealtime/realtime/auth"
)

func TestNewVerifierConfig(t *testing.T) {
	k := keys(t)
	jwks := func(keys ...any) []byte {
		if keys == nil {
			keys = []any{}
		}
		return mustJSON(t, map[string]any{"keys": keys})
	}
	good := rsaJWK("r", &k.rsa.PublicKey)
	tests := []struct {
		name    string
		cfg     auth.Config
		wantErr string // "" means success
	}{
		{"secret only", auth.Config{Secret: []byte("s")}, ""},
		{"jwks only", auth.Config{JWKS: k.jwks}, ""},
		{"both", auth.Config{Secret: []byte("s"), JWKS: k.jwks}, ""},
		{"nothing", auth.Config{}, "no JWT secret and no usable JWKS key"},
		{"empty secret and JWKS", auth.Config{Secret: []byte{}, JWKS: []byte{}}, "no JWT secret"},
		{"JWKS not JSON", auth.Config{Secret: []byte("s"), JWKS: []byte("{keys")}, "parse JWKS"},
		{"JWKS without keys", auth.Config{JWKS: []byte(`{"kty":"RSA"}`)}, `no "keys" array`},
		{"JWKS keys not an array", auth.Config{JWKS: []byte(`{"keys":{}}`)}, "parse JWKS"},
		{"JWKS key not an object", auth.Config{JWKS: []byte(`{"keys":[1]}`)}, "key 0"},
		{"JWKS with only unsupported keys", auth.Config{JWKS: jwks(map[string]any{"kty": "OKP", "crv": "Ed448", "kid": "a", "x": "AA"})}, "no usable JWKS key"},
		{"JWKS with only kid-less keys", auth.Config{JWKS: jwks(map[string]any{"kty": "oct", "k": "c2VjcmV0"})}, "no usable JWKS key"},
		{"empty keys but secret", auth.Config{Secret: []byte("s"), JWKS: jwks()}, ""},
		{"RSA without n", auth.Config{JWKS: jwks(map[string]any{"kty": "RSA", "kid": "r", "e": "AQAB"})}, "bad RSA n"},
		{"RSA bad e", auth.Config{JWKS: jwks(map[string]any{"kty": "RSA", "kid": "r", "n": good["n"], "e": "AA"})}, "bad RSA e"},
		{"RSA too small", auth.Config{JWKS: jwks(map[string]any{"kty": "RSA", "kid": "r", "n": b64(make512(t)), "e": "AQAB"})}, "need at least 1024"},
		{"EC point off curve", auth.Config{JWKS: jwks(map[string]any{"kty": "EC", "kid": "e", "crv": "P-256", "x": b64([]byte{1}), "y": b64([]byte{2})})}, "bad EC point"},
		{"EC bad base64", auth.Config{JWKS: jwks(map[string]any{"kty": "EC", "kid": "e", "crv": "P-256", "x": "!", "y": "!"})}, "bad EC x/y"},
		{"Ed25519 short x", auth.Config{JWKS: jwks(map[string]any{"kty": "OKP", "kid": "d", "crv": "Ed25519", "x": b64([]byte{1, 2})})}, "bad Ed25519 x"},
		{"oct empty k", auth.Config{JWKS: jwks(map[string]any{"kty": "oct", "kid": "h", "k": ""})}, "bad oct k"},
		{"padded base64 accepted", auth.Config{JWKS: jwks(map[string]any{"kty": "oct", "kid": "h", "k": "c2VjcmV0MQ=="})}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := auth.NewVerifier(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || v == nil {
					t.Fatalf("NewVerifier = %v, %v", v, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewVerifier error = %v, want it to contain %q", err, tt.wantErr)
			}
			if v != nil {
				t.Error("NewVerifier returned a Verifier with an error")
			}
		})
	}
}

// make512 returns the modulus of a 512-bit RSA key (too small to be accepted).
func make512(t *testing.T) []byte {
	t.Helper()
	n := make([]byte, 64)
	if _, err := rand.Read(n); err != nil {
		t.Fatal(err)
	}
	n[0] |= 0x80
	return n
}

// TestJWKSFirstKeyWins checks that, for one kid and key type, the first JWKS key is used,
// and that the same kid may name keys of different types.
func TestJWKSFirstKeyWins(t *testing.T) {
	k := keys(t)
	doc, err := json.Marshal(map[string]any{"keys": []any{
		rsaJWK("shared", &k.rsa.PublicKey),
		rsaJWK("shared", &k.rsaOther.PublicKey),
		ecJWK("shared", &k.ec256.PublicKey),
	}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.Config{JWKS: doc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyAt(sign(t, jwt.SigningMethodRS256, k.rsa, "shared", valid()), testNow); err != nil {
		t.Errorf("first RSA key: %v", err)
	}
	if _, err := v.VerifyAt(sign(t, jwt.SigningMethodRS256, k.rsaOther, "shared", valid()), testNow); err == nil {
		t.Error("second RSA key with the same kid was used")
	}
	if _, err := v.VerifyAt(sign(t, jwt.SigningMethodES256, k.ec256, "shared", valid()), testNow); err != nil {
		t.Errorf("EC key with the shared kid: %v", err)
	}
}

// TestNewVerifierCopiesSecret checks that changing the caller's slice afterwards has no effect.
func TestNewVerifierCopiesSecret(t *testing.T) {
	secret := []byte(string(testSecret))
	v, err := auth.NewVerifier(auth.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	secret[0] ^= 0xff
	if _, err := v.VerifyAt(sign(t, jwt.SigningMethodHS256, testSecret, "", valid()), testNow); err != nil {
		t.Errorf("VerifyAt after caller changed its secret: %v", err)
	}
}
