package auth

import (
	"crypto/elliptic"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Config holds the verification material of one tenant. At least one of Secret and JWKS
// must be set.
type Config struct {
	// Secret is the shared secret for HS256/HS384/HS512 tokens.
	Secret []byte
	// JWKS is the raw content of a JWK Set JSON document ({"keys": [...]}). RSA keys verify
	// RS*/PS*, EC P-256/P-384/P-521 keys ES256/ES384/ES512, OKP Ed25519 keys EdDSA, and
	// oct keys HS* tokens with a matching kid. Keys are selected by the token's `kid`.
	JWKS []byte
}

// Verifier checks tokens against one Config. It is immutable and safe for concurrent use.
type Verifier struct {
	secret []byte  // nil when no secret is configured
	keys   *keySet // nil when no JWKS is configured
}

// NewVerifier builds a Verifier. It copies cfg.Secret and parses cfg.JWKS, and fails when
// neither is given, when the JWKS cannot be parsed or holds a broken key, or when it holds no
// usable key and there is no secret.
func NewVerifier(cfg Config) (*Verifier, error) {
	v := &Verifier{}
	if len(cfg.Secret) > 0 {
		v.secret = append([]byte(nil), cfg.Secret...)
	}
	if len(cfg.JWKS) > 0 {
		ks, err := parseJWKS(cfg.JWKS)
		if err != nil {
			return nil, err
		}
		v.keys = ks
	}
	if v.secret == nil && v.keys.empty() {
		return nil, errors.New("auth: new verifier: no JWT secret and no usable JWKS key")
	}
	return v, nil
}

// Verify is VerifyAt with the current time.
func (v *Verifier) Verify(token string) (*Claims, error) {
	return v.VerifyAt(token, time.Now())
}

// VerifyAt checks token as of now and returns its claims. The token is URL-decoded and
// stripped of all whitespace first. Checks, in order: well-formed compact JWS (else
// ErrMalformed); a supported alg (HS*, RS*, PS*, ES*, EdDSA; never "none") with a usable key
// (else ErrSigner or [*SignerKidError]); the signature (else ErrSignature); `exp`, if present,
// a number > 0 (else ErrExpInvalid) strictly after now (else [*ExpiredError]); `iat`, if
// present, a number (else ErrIatInvalid); `nbf`, if present, a number (else ErrNbfInvalid);
// `iat` and `nbf` no later than now plus [ClockLeeway] (else ErrNotYetValid); a non-empty
// string `role` and an `exp` (else ErrClaimsMissing); finally no NUL character in any claim
// string or name (else ErrMalformed). An empty token gives ErrMissingToken. Errors never
// contain the token.
func (v *Verifier) VerifyAt(token string, now time.Time) (*Claims, error) {
	tok, err := cleanToken(token)
	if err != nil {
		return nil, err
	}
	if tok == "" {
		return nil, ErrMissingToken
	}
	headerB64, rest, ok1 := strings.Cut(tok, ".")
	payloadB64, sigB64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sigB64, ".") {
		return nil, fmt.Errorf("%w (not three segments)", ErrMalformed)
	}
	payload, err := b64url(payloadB64)
	if err != nil {
		return nil, fmt.Errorf("%w (payload: %v)", ErrMalformed, err)
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, err
	}
	headerJSON, err := b64url(headerB64)
	if err != nil {
		return nil, fmt.Errorf("%w (header: %v)", ErrMalformed, err)
	}
	header, err := decodeObject(headerJSON)
	if err != nil {
		return nil, fmt.Errorf("%w (header: %v)", ErrMalformed, err)
	}
	sig, err := b64url(sigB64)
	if err != nil {
		return nil, fmt.Errorf("%w (signature: %v)", ErrMalformed, err)
	}
	method, key, err := v.signer(header)
	if err != nil {
		return nil, err
	}
	if err := method.Verify(headerB64+"."+payloadB64, sig, key); err != nil {
		if errors.Is(err, jwt.ErrInvalidKeyType) || errors.Is(err, jwt.ErrInvalidKey) ||
			errors.Is(err, jwt.ErrHashUnavailable) {
			return nil, fmt.Errorf("%w (%s: %v)", ErrSigner, method.Alg(), err)
		}
		return nil, ErrSignature
	}
	return validateClaims(claims, now)
}

// cleanToken URL-decodes (query-unescapes) the token, then removes every ASCII whitespace
// character, as the real server does before parsing.
func cleanToken(token string) (string, error) {
	dec, err := url.QueryUnescape(token)
	if err != nil {
		return "", fmt.Errorf("%w (bad URL encoding)", ErrMalformed)
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\v', '\f', '\r':
			return -1
		}
		return r
	}, dec), nil
}

// keyFamily is the kind of key an alg needs.
type keyFamily int

const (
	familyHMAC keyFamily = iota
	familyRSA
	familyEC
	familyEd25519
)

// algSpec describes one accepted JWS alg.
type algSpec struct {
	method jwt.SigningMethod
	family keyFamily
	curve  elliptic.Curve // familyEC only
}

// algs lists every accepted alg; anything else (including "none") is a signer error.
// "Ed25519" is accepted as a spelling of EdDSA, as on the real server.
var algs = map[string]algSpec{
	"HS256":   {method: jwt.SigningMethodHS256, family: familyHMAC},
	"HS384":   {method: jwt.SigningMethodHS384, family: familyHMAC},
	"HS512":   {method: jwt.SigningMethodHS512, family: familyHMAC},
	"RS256":   {method: jwt.SigningMethodRS256, family: familyRSA},
	"RS384":   {method: jwt.SigningMethodRS384, family: familyRSA},
	"RS512":   {method: jwt.SigningMethodRS512, family: familyRSA},
	"PS256":   {method: jwt.SigningMethodPS256, family: familyRSA},
	"PS384":   {method: jwt.SigningMethodPS384, family: familyRSA},
	"PS512":   {method: jwt.SigningMethodPS512, family: familyRSA},
	"ES256":   {method: jwt.SigningMethodES256, family: familyEC, curve: elliptic.P256()},
	"ES384":   {method: jwt.SigningMethodES384, family: familyEC, curve: elliptic.P384()},
	"ES512":   {method: jwt.SigningMethodES512, family: familyEC, curve: elliptic.P521()},
	"EdDSA":   {method: jwt.SigningMethodEdDSA, family: familyEd25519},
	"Ed25519": {method: jwt.SigningMethodEdDSA, family: familyEd25519},
}

// signer picks the verification method and key for a token header. HS tokens use the oct
// JWKS key named by their kid if there is one, else the secret; all other algs need a kid
// naming a JWKS key of the matching type. A token that names a kid gets a *SignerKidError
// when no key fits.
func (v *Verifier) signer(header map[string]any) (jwt.SigningMethod, any, error) {
	alg, _ := header["alg"].(string)
	spec, ok := algs[alg]
	if !ok {
		return nil, nil, fmt.Errorf("%w (unsupported alg %q)", ErrSigner, alg)
	}
	kid, hasKid := header["kid"].(string)
	var keys *kidKeys
	if hasKid {
		keys = v.keys.lookup(kid)
	}
	if keys == nil {
		keys = &kidKeys{}
	}
	fail := func(reason string) (jwt.SigningMethod, any, error) {
		if hasKid {
			return nil, nil, &SignerKidError{Kid: kid, Reason: reason}
		}
		return nil, nil, fmt.Errorf("%w (%s)", ErrSigner, reason)
	}
	switch spec.family {
	case familyHMAC:
		if keys.oct != nil {
			return spec.method, keys.oct, nil
		}
		if v.secret != nil {
			return spec.method, v.secret, nil
		}
		return fail(alg + " token but no JWT secret and no matching oct JWKS key")
	case familyRSA:
		if keys.rsa != nil {
			return spec.method, keys.rsa, nil
		}
		return fail("no RSA JWKS key for " + alg + " token")
	case familyEC:
		if keys.ec == nil {
			return fail("no EC JWKS key for " + alg + " token")
		}
		if keys.ec.Curve.Params().Name != spec.curve.Params().Name {
			return fail("EC JWKS key curve " + keys.ec.Curve.Params().Name + " does not match " + alg)
		}
		return spec.method, keys.ec, nil
	default: // familyEd25519
		if keys.ed != nil {
			return spec.method, keys.ed, nil
		}
		return fail("no Ed25519 JWKS key for " + alg + " token")
	}
}
