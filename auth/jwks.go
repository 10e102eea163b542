package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// keySet holds the verification keys of a JWKS, indexed by kid. It is read-only after
// parseJWKS returns.
type keySet struct {
	byKid map[string]*kidKeys
}

// kidKeys holds at most one key per key type for one kid; the first key of a type in the
// JWKS wins, as on the real server.
type kidKeys struct {
	rsa *rsa.PublicKey
	ec  *ecdsa.PublicKey
	ed  ed25519.PublicKey
	oct []byte
}

// jwk is the subset of RFC 7517/7518/8037 members we read.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
	K   string `json:"k"`
}

// parseJWKS parses a JWK Set document ({"keys": [...]}). Keys of supported types (RSA, EC
// P-256/384/521, OKP Ed25519, oct) with bad parameters are an error; keys of other types or
// curves, and keys without a kid (which no token could select), are skipped.
func parseJWKS(data []byte) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("auth: parse JWKS: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`auth: parse JWKS: no "keys" array`)
	}
	ks := &keySet{byKid: make(map[string]*kidKeys)}
	for i, raw := range doc.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, fmt.Errorf("auth: parse JWKS key %d: %w", i, err)
		}
		if k.Kid == "" {
			continue
		}
		if err := ks.add(&k); err != nil {
			return nil, fmt.Errorf("auth: parse JWKS key %d (kid %q): %w", i, k.Kid, err)
		}
	}
	return ks, nil
}

// add decodes k and stores it under its kid unless a key of that type is already there.
func (ks *keySet) add(k *jwk) error {
	slot := ks.byKid[k.Kid]
	if slot == nil {
		slot = &kidKeys{}
	}
	switch k.Kty {
	case "RSA":
		if slot.rsa != nil {
			return nil
		}
		pub, err := rsaKey(k)
		if err != nil {
			return err
		}
		slot.rsa = pub
	case "EC":
		curve := ecCurve(k.Crv)
		if curve == nil || slot.ec != nil {
			return nil
		}
		pub, err := ecKey(curve, k)
		if err != nil {
			return err
		}
		slot.ec = pub
	case "OKP":
		if k.Crv != "Ed25519" || slot.ed != nil {
			return nil
		}
		x, err := b64url(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return errors.New("bad Ed25519 x")
		}
		slot.ed = ed25519.PublicKey(x)
	case "oct":
		if slot.oct != nil {
			return nil
		}
		secret, err := b64url(k.K)
		if err != nil || len(secret) == 0 {
			return errors.New("bad oct k")
		}
		slot.oct = secret
	default:
		return nil
	}
	ks.byKid[k.Kid] = slot
	return nil
}

// lookup returns the keys stored for kid, or nil. A nil *keySet has no keys.
func (ks *keySet) lookup(kid string) *kidKeys {
	if ks == nil {
		return nil
	}
	return ks.byKid[kid]
}

// empty reports whether the set holds no key at all.
func (ks *keySet) empty() bool { return ks == nil || len(ks.byKid) == 0 }

// minRSABits is the smallest RSA modulus crypto/rsa verifies with by default.
const minRSABits = 1024

func rsaKey(k *jwk) (*rsa.PublicKey, error) {
	n, err := b64url(k.N)
	if err != nil || len(n) == 0 {
		return nil, errors.New("bad RSA n")
	}
	e, err := b64url(k.E)
	if err != nil || len(e) == 0 || len(e) > 4 {
		return nil, errors.New("bad RSA e")
	}
	var exp int
	for _, b := range e {
		exp = exp<<8 | int(b)
	}
	if exp < 3 || exp%2 == 0 {
		return nil, errors.New("bad RSA e")
	}
	mod := new(big.Int).SetBytes(n)
	if mod.BitLen() < minRSABits {
		return nil, fmt.Errorf("RSA key of %d bits, need at least %d", mod.BitLen(), minRSABits)
	}
	return &rsa.PublicKey{N: mod, E: exp}, nil
}

// ecCurve maps a JWK crv to a curve; nil for curves we do not support.
func ecCurve(crv string) elliptic.Curve {
	switch crv {
	case "P-256":
		return elliptic.P256()
	case "P-384":
		return elliptic.P384()
	case "P-521":
		return elliptic.P521()
	}
	return nil
}

// ecKey decodes x and y (left-padding short encodings) and checks the point is on the curve.
func ecKey(curve elliptic.Curve, k *jwk) (*ecdsa.PublicKey, error) {
	size := (curve.Params().BitSize + 7) / 8
	x, errX := b64url(k.X)
	y, errY := b64url(k.Y)
	if errX != nil || errY != nil || len(x) == 0 || len(y) == 0 || len(x) > size || len(y) > size {
		return nil, errors.New("bad EC x/y")
	}
	point := make([]byte, 1+2*size)
	point[0] = 4 // uncompressed
	copy(point[1+size-len(x):1+size], x)
	copy(point[1+2*size-len(y):], y)
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, fmt.Errorf("bad EC point: %w", err)
	}
	return pub, nil
}

// b64url decodes base64url, with or without padding.
func b64url(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
