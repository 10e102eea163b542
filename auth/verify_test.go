package auth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/openrealtime/realtime/auth"
)

// testNow is the fixed verification time of every test; no test reads the wall clock.
var testNow = time.Unix(1_800_000_000, 0)

var testSecret = []byte("super-secret-jwt-token-with-at-least-32-characters")

// testKeys are generated once per test binary.
type testKeys struct {
	rsa, rsaOther *rsa.PrivateKey
	ec256, ec384  *ecdsa.PrivateKey
	ed            ed25519.PrivateKey
	jwks          []byte // public halves under kids "rsa-1", "ec-1", "ec-2", "ed-1", plus oct "hs-1"
	octSecret     []byte
}

var (
	keysOnce sync.Once
	keysVal  *testKeys
	keysErr  error
)

func keys(t testing.TB) *testKeys {
	t.Helper()
	keysOnce.Do(func() { keysVal, keysErr = newTestKeys() })
	if keysErr != nil {
		t.Fatalf("generate keys: %v", keysErr)
	}
	return keysVal
}

func newTestKeys() (*testKeys, error) {
	k := &testKeys{octSecret: []byte("a-different-secret-held-in-the-jwks")}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if k.rsaOther, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if k.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		return nil, err
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	k.jwks, err = json.Marshal(map[string]any{"keys": []any{
		rsaJWK("rsa-1", &k.rsa.PublicKey),
		ecJWK("ec-1", &k.ec256.PublicKey),
		ecJWK("ec-2", &k.ec384.PublicKey),
		map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": b64(k.ed.Public().(ed25519.PublicKey))},
		map[string]any{"kty": "oct", "kid": "hs-1", "k": b64(k.octSecret)},
		// Types we do not support are skipped, not fatal.
		map[string]any{"kty": "OKP", "crv": "X25519", "kid": "x-1", "x": b64(make([]byte, 32))},
	}})
	return k, err
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, pub *rsa.PublicKey) map[string]any {
	return map[string]any{
		"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}
}

func ecJWK(kid string, pub *ecdsa.PublicKey) map[string]any {
	raw, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		panic(err)
	}
	size := (len(raw) - 1) / 2
	return map[string]any{
		"kty": "EC", "kid": kid, "crv": pub.Curve.Params().Name,
		"x": b64(raw[1 : 1+size]), "y": b64(raw[1+size:]),
	}
}

// sign mints a token with the jwt library; kid "" means no kid header.
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, claims map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, jwt.MapClaims(claims))
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// rawToken builds header.payload.signature from literal JSON texts, with no signing.
func rawToken(header, payload, sig string) string {
	return b64([]byte(header)) + "." + b64([]byte(payload)) + "." + sig
}

// valid returns claims that pass every check at testNow.
func valid() map[string]any {
	return map[string]any{"role": "authenticated", "sub": "user-1", "exp": testNow.Unix() + 3600}
}

// with returns valid() changed by kv pairs; a nil value deletes the key.
func with(kv ...any) map[string]any {
	m := valid()
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(m, kv[i].(string))
		} else {
			m[kv[i].(string)] = kv[i+1]
		}
	}
	return m
}

const (
	signerText    = "Failed to generate JWT signer, check your JWT secret or JWKS configuration"
	malformedText = "The token provided is not a valid JWT"
	claimsText    = "Fields `role` and `exp` are required in JWT"
)

func signerKidText(kid string) string {
	return `Failed to generate JWT signer for key ID (kid) "` + kid + `", check your JWT secret or JWKS configuration`
}

func TestVerify(t *testing.T) {
	k := keys(t)
	secretOnly := auth.Config{Secret: testSecret}
	jwksOnly := auth.Config{JWKS: k.jwks}
	both := auth.Config{Secret: testSecret, JWKS: k.jwks}
	hs := func(claims map[string]any) string { return sign(t, jwt.SigningMethodHS256, testSecret, "", claims) }
	good := hs(valid())

	tests := []struct {
		name  string
		cfg   auth.Config
		token string
		want  want
		check func(t *testing.T, c *auth.Claims, err error)
	}{
		{name: "HS256", cfg: secretOnly, token: good},
		{name: "HS384", cfg: secretOnly, token: sign(t, jwt.SigningMethodHS384, testSecret, "", valid())},
		{name: "HS512", cfg: secretOnly, token: sign(t, jwt.SigningMethodHS512, testSecret, "", valid())},
		{name: "HS256 with kid not in JWKS uses secret", cfg: both, token: sign(t, jwt.SigningMethodHS256, testSecret, "other", valid())},
		{name: "HS256 with kid of JWKS oct key", cfg: both, token: sign(t, jwt.SigningMethodHS256, k.octSecret, "hs-1", valid())},
		{name: "RS256 via JWKS", cfg: jwksOnly, token: sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", valid())},
		{name: "RS512 via JWKS", cfg: both, token: sign(t, jwt.SigningMethodRS512, k.rsa, "rsa-1", valid())},
		{name: "PS256 via JWKS", cfg: jwksOnly, token: sign(t, jwt.SigningMethodPS256, k.rsa, "rsa-1", valid())},
		{name: "ES256 via JWKS", cfg: jwksOnly, token: sign(t, jwt.SigningMethodES256, k.ec256, "ec-1", valid())},
		{name: "ES384 via JWKS", cfg: jwksOnly, token: sign(t, jwt.SigningMethodES384, k.ec384, "ec-2", valid())},
		{name: "EdDSA via JWKS", cfg: jwksOnly, token: sign(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", valid())},
		{
			name: "alg spelled Ed25519", cfg: jwksOnly,
			token: func() string {
				signing := b64([]byte(`{"alg":"Ed25519","kid":"ed-1"}`)) + "." + b64(mustJSON(t, valid()))
				return signing + "." + b64(ed25519.Sign(k.ed, []byte(signing)))
			}(),
		},
		{
			name: "URL-encoded with surrounding and inner whitespace", cfg: secretOnly,
			token: " \n\t" + strings.ReplaceAll(good, ".", "%2E") + "%20\r\n ",
		},
		{
			name: "claims kept and canonicalised", cfg: secretOnly,
			token: hs(with("app_metadata", map[string]any{"z": 1, "a": "<b>"}, "exp", 1_800_003_600.6, "iat", 1_800_000_000)),
			check: func(t *testing.T, c *auth.Claims, _ error) {
				wantRaw := `{"app_metadata":{"a":"<b>","z":1},"exp":1800003601,"iat":1800000000,"role":"authenticated","sub":"user-1"}`
				if string(c.Raw) != wantRaw {
					t.Errorf("Raw = %s, want %s", c.Raw, wantRaw)
				}
				if want := time.Unix(1_800_003_600, 600_000_000); c.Exp.Sub(want).Abs() > time.Millisecond {
					t.Errorf("Exp = %v, want %v", c.Exp, want)
				}
				if got := c.ExpiresIn(testNow); got.Round(time.Millisecond) != 3600600*time.Millisecond {
					t.Errorf("ExpiresIn = %v", got)
				}
			},
		},

		{name: "empty", cfg: secretOnly, token: "", want: want{auth.ErrMissingToken, "API key is missing", "MalformedJWT: " + malformedText, malformedText}},
		{name: "whitespace only", cfg: secretOnly, token: " \n %20 ", want: want{auth.ErrMissingToken, "API key is missing", "MalformedJWT: " + malformedText, malformedText}},

		{name: "expired 10s", cfg: secretOnly, token: hs(with("exp", testNow.Unix()-10)),
			want: want{auth.ErrTokenExpired, "Token has expired", "InvalidJWTToken: Token has expired 10 seconds ago", "Token has expired 10 seconds ago"},
			check: func(t *testing.T, _ *auth.Claims, err error) {
				var e *auth.ExpiredError
				if !errors.As(err, &e) || e.Seconds != 10 {
					t.Errorf("want *ExpiredError{Seconds: 10}, got %#v", err)
				}
			}},
		{name: "exp equal to now is expired", cfg: secretOnly, token: hs(with("exp", testNow.Unix())),
			want: want{auth.ErrTokenExpired, "Token has expired", "InvalidJWTToken: Token has expired 0 seconds ago", "Token has expired 0 seconds ago"}},
		{name: "expiry checked before missing role", cfg: secretOnly, token: hs(with("exp", testNow.Unix()-3, "role", nil)),
			want: want{auth.ErrTokenExpired, "Token has expired", "InvalidJWTToken: Token has expired 3 seconds ago", "Token has expired 3 seconds ago"}},

		{name: "alg none", cfg: both, token: rawToken(`{"alg":"none","typ":"JWT"}`, string(mustJSON(t, valid())), ""),
			want: want{auth.ErrSigner, signerText, "JwtSignerError: " + signerText, signerText}},
		{name: "alg None with kid", cfg: both, token: rawToken(`{"alg":"None","kid":"hs-1"}`, string(mustJSON(t, valid())), ""),
			want: want{auth.ErrSigner, signerText, "JwtSignerError: " + signerText, signerText}},
		{name: "alg missing", cfg: both, token: rawToken(`{"typ":"JWT"}`, string(mustJSON(t, valid())), "c2ln"),
			want: want{auth.ErrSigner, signerText, "JwtSignerError: " + signerText, signerText}},

		{name: "wrong secret", cfg: secretOnly, token: sign(t, jwt.SigningMethodHS256, []byte("not-the-secret"), "", valid()),
			want: want{auth.ErrSignature, "Failed to validate JWT signature", "JwtSignatureError: Failed to validate JWT signature", "Failed to validate JWT signature"}},
		{name: "signature checked before claims", cfg: secretOnly, token: sign(t, jwt.SigningMethodHS256, []byte("not-the-secret"), "", map[string]any{"a": 1}),
			want: want{auth.ErrSignature, "Failed to validate JWT signature", "JwtSignatureError: Failed to validate JWT signature", "Failed to validate JWT signature"}},
		{name: "RS256 signed by another key", cfg: jwksOnly, token: sign(t, jwt.SigningMethodRS256, k.rsaOther, "rsa-1", valid()),
			want: want{auth.ErrSignature, "Failed to validate JWT signature", "JwtSignatureError: Failed to validate JWT signature", "Failed to validate JWT signature"}},
		{name: "payload tampered", cfg: secretOnly, token: func() string {
			p := strings.Split(good, ".")
			return p[0] + "." + b64(mustJSON(t, with("role", "service_role"))) + "." + p[2]
		}(), want: want{auth.ErrSignature, "Failed to validate JWT signature", "JwtSignatureError: Failed to validate JWT signature", "Failed to validate JWT signature"}},

		{name: "unknown kid", cfg: jwksOnly, token: sign(t, jwt.SigningMethodRS256, k.rsa, "nope", valid()),
			want: want{auth.ErrSigner, signerKidText("nope"), "JwtSignerError: " + signerKidText("nope"), signerKidText("nope")},
			check: func(t *testing.T, _ *auth.Claims, err error) {
				var e *auth.SignerKidError
				if !errors.As(err, &e) || e.Kid != "nope" {
					t.Errorf("want *SignerKidError{Kid: nope}, got %#v", err)
				}
			}},
		{name: "ES256 kid names an EC key of another curve", cfg: jwksOnly, token: sign(t, jwt.SigningMethodES256, k.ec256, "ec-2", valid()),
			want: want{auth.ErrSigner, signerKidText("ec-2"), "JwtSignerError: " + signerKidText("ec-2"), signerKidText("ec-2")}},
		{name: "RS256 kid names an EC key", cfg: jwksOnly, token: sign(t, jwt.SigningMethodRS256, k.rsa, "ec-1", valid()),
			want: want{auth.ErrSigner, signerKidText("ec-1"), "JwtSignerError: " + signerKidText("ec-1"), signerKidText("ec-1")}},
		{name: "EdDSA kid names an unsupported OKP key", cfg: jwksOnly, token: sign(t, jwt.SigningMethodEdDSA, k.ed, "x-1", valid()),
			want: want{auth.ErrSigner, signerKidText("x-1"), "JwtSignerError: " + signerKidText("x-1"), signerKidText("x-1")}},
		{name: "RS256 without kid", cfg: jwksOnly, token: sign(t, jwt.SigningMethodRS256, k.rsa, "", valid()),
			want: want{auth.ErrSigner, signerText, "JwtSignerError: " + signerText, signerText}},
		{name: "RS256 with kid but no JWKS configured", cfg: secretOnly, token: sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", valid()),
			want: want{auth.ErrSigner, signerKidText("rsa-1"), "JwtSignerError: " + signerKidText("rsa-1"), signerKidText("rsa-1")}},
		{name: "HS token with kid, only JWKS configured", cfg: jwksOnly, token: sign(t, jwt.SigningMethodHS256, testSecret, "auth-hs", valid()),
			want: want{auth.ErrSigner, signerKidText("auth-hs"), "JwtSignerError: " + signerKidText("auth-hs"), signerKidText("auth-hs")}},
		{name: "HS token without kid, only JWKS configured", cfg: jwksOnly, token: good,
			want: want{auth.ErrSigner, signerText, "JwtSignerError: " + signerText, signerText}},

		{name: "missing role", cfg: secretOnly, token: hs(with("role", nil)),
			want: want{auth.ErrClaimsMissing, claimsText, "InvalidJWTToken: " + claimsText, claimsText}},
		{name: "role not a string", cfg: secretOnly, token: hs(with("role", 7)),
			want: want{auth.ErrClaimsMissing, claimsText, "InvalidJWTToken: " + claimsText, claimsText}},
		{name: "missing exp", cfg: secretOnly, token: hs(with("exp", nil)),
			want: want{auth.ErrClaimsMissing, claimsText, "InvalidJWTToken: " + claimsText, claimsText}},
		{name: "empty claims", cfg: secretOnly, token: hs(map[string]any{}),
			want: want{auth.ErrClaimsMissing, claimsText, "InvalidJWTToken: " + claimsText, claimsText}},

		{name: "exp zero", cfg: secretOnly, token: hs(with("exp", 0)), want: wantExpInvalid},
		{name: "exp negative", cfg: secretOnly, token: hs(with("exp", -5)), want: wantExpInvalid},
		{name: "exp a string", cfg: secretOnly, token: hs(with("exp", "1900000000")), want: wantExpInvalid},
		{name: "exp an object", cfg: secretOnly, token: hs(with("exp", map[string]any{"n": 1})), want: wantExpInvalid},
		{name: "exp a boolean", cfg: secretOnly, token: hs(with("exp", true)), want: wantExpInvalid},
		{name: "exp out of float range", cfg: secretOnly, token: hsRaw(t, `{"role":"anon","exp":1e999}`), want: wantExpInvalid},
		{name: "iat not numeric", cfg: secretOnly, token: hs(with("iat", "yesterday")),
			want: want{auth.ErrIatInvalid, "Token issued at time (iat) is invalid", "Unknown Error on Channel", "Token issued at time (iat) is invalid"}},
		{name: "nbf not numeric", cfg: secretOnly, token: hs(with("nbf", "soon")),
			want: want{auth.ErrNbfInvalid, "Token not before time (nbf) is invalid", "InvalidJWTToken: Token not before time (nbf) is invalid", "Token not before time (nbf) is invalid"}},
		{name: "iat in the future beyond the leeway", cfg: secretOnly, token: hs(with("iat", testNow.Unix()+31)), want: wantNotYet},
		{name: "nbf in the future beyond the leeway", cfg: secretOnly, token: hs(with("nbf", testNow.Unix()+3600)), want: wantNotYet},
		{name: "iat within the leeway", cfg: secretOnly, token: hs(with("iat", testNow.Unix()+29))},
		{name: "nbf within the leeway", cfg: secretOnly, token: hs(with("nbf", testNow.Unix()+30))},
		{name: "nbf and iat in the past", cfg: secretOnly, token: hs(with("nbf", testNow.Unix()-60, "iat", testNow.Unix()-60))},
		{name: "NUL in role", cfg: secretOnly, token: hs(with("role", "anon\x00")), want: wantMalformed},
		{name: "NUL in sub", cfg: secretOnly, token: hs(with("sub", "user\x00-1")), want: wantMalformed},
		{name: "NUL in a nested claim", cfg: secretOnly, token: hs(with("app_metadata", map[string]any{"tags": []any{"ok", "b\x00d"}})), want: wantMalformed},
		{name: "NUL in a claim name", cfg: secretOnly, token: hs(with("x\x00y", 1)), want: wantMalformed},

		{name: "not a JWT", cfg: secretOnly, token: "not-a-jwt", want: wantMalformed},
		{name: "two segments", cfg: secretOnly, token: "eyJhbGciOiJIUzI1NiJ9.e30", want: wantMalformed},
		{name: "four segments", cfg: secretOnly, token: good + ".x", want: wantMalformed},
		{name: "payload not base64", cfg: secretOnly, token: "eyJhbGciOiJIUzI1NiJ9.!!!.c2ln", want: wantMalformed},
		{name: "payload not JSON", cfg: secretOnly, token: rawToken(`{"alg":"HS256"}`, `role=anon`, "c2ln"), want: wantMalformed},
		{name: "payload a JSON array", cfg: secretOnly, token: rawToken(`{"alg":"HS256"}`, `[1,2]`, "c2ln"), want: wantMalformed},
		{name: "payload null", cfg: secretOnly, token: rawToken(`{"alg":"HS256"}`, `null`, "c2ln"), want: wantMalformed},
		{name: "payload trailing data", cfg: secretOnly, token: rawToken(`{"alg":"HS256"}`, `{"role":"anon"}}`, "c2ln"), want: wantMalformed},
		{name: "header not JSON", cfg: secretOnly, token: rawToken(`HS256`, `{"role":"anon"}`, "c2ln"), want: wantMalformed},
		{name: "signature not base64", cfg: secretOnly, token: rawToken(`{"alg":"HS256"}`, `{"role":"anon"}`, "!!"), want: wantMalformed},
		{name: "bad URL escape", cfg: secretOnly, token: good + "%zz", want: wantMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := auth.NewVerifier(tt.cfg)
			if err != nil {
				t.Fatalf("NewVerifier: %v", err)
			}
			c, err := v.VerifyAt(tt.token, testNow)
			if tt.want.err == nil {
				if err != nil {
					t.Fatalf("VerifyAt: unexpected error %v", err)
				}
				if c.Role != "authenticated" || c.Sub != "user-1" || !c.Exp.After(testNow) {
					t.Errorf("claims = role %q sub %q exp %v", c.Role, c.Sub, c.Exp)
				}
				if c.Map["role"] != "authenticated" {
					t.Errorf("Map[role] = %v", c.Map["role"])
				}
			} else {
				if c != nil {
					t.Errorf("VerifyAt returned claims with error %v", err)
				}
				if !errors.Is(err, tt.want.err) {
					t.Fatalf("VerifyAt error = %v, want %v", err, tt.want.err)
				}
				if strings.Contains(err.Error(), tt.token) && tt.token != "" {
					t.Errorf("error text contains the token: %v", err)
				}
				if got := auth.ConnectMessage(err); got != tt.want.connect {
					t.Errorf("ConnectMessage = %q, want %q", got, tt.want.connect)
				}
				if got := auth.JoinReason(err); got != tt.want.join {
					t.Errorf("JoinReason = %q, want %q", got, tt.want.join)
				}
				if got := auth.SystemMessage(err); got != tt.want.system {
					t.Errorf("SystemMessage = %q, want %q", got, tt.want.system)
				}
			}
			if tt.check != nil {
				tt.check(t, c, err)
			}
		})
	}
}

// want is the expected outcome of one VerifyAt call.
type want struct {
	err     error  // nil: success
	connect string // ConnectMessage, checked when err != nil
	join    string // JoinReason
	system  string // SystemMessage
}

var wantMalformed = want{auth.ErrMalformed, malformedText, "MalformedJWT: " + malformedText, malformedText}

var wantExpInvalid = want{auth.ErrExpInvalid, "Token expiration time is invalid", "InvalidJWTToken: Token expiration time is invalid", "Token expiration time is invalid"}

var wantNotYet = want{auth.ErrNotYetValid, "Token is not valid yet", "InvalidJWTToken: Token is not valid yet", "Token is not valid yet"}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVerifyUsesWallClock checks that Verify (no explicit time) accepts a token valid for
// a century and refuses one that expired at the Unix epoch + 1s.
func TestVerifyUsesWallClock(t *testing.T) {
	v, err := auth.NewVerifier(auth.Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	far := sign(t, jwt.SigningMethodHS256, testSecret, "", with("exp", time.Now().AddDate(100, 0, 0).Unix()))
	if _, err := v.Verify(far); err != nil {
		t.Errorf("Verify(far future) = %v", err)
	}
	old := sign(t, jwt.SigningMethodHS256, testSecret, "", with("exp", 1))
	if _, err := v.Verify(old); !errors.Is(err, auth.ErrTokenExpired) {
		t.Errorf("Verify(expired) = %v, want ErrTokenExpired", err)
	}
}

// TestVerifierConcurrent shares one Verifier between goroutines (run with -race).
func TestVerifierConcurrent(t *testing.T) {
	k := keys(t)
	v, err := auth.NewVerifier(auth.Config{Secret: testSecret, JWKS: k.jwks})
	if err != nil {
		t.Fatal(err)
	}
	tokens := []string{
		sign(t, jwt.SigningMethodHS256, testSecret, "", valid()),
		sign(t, jwt.SigningMethodES256, k.ec256, "ec-1", valid()),
		sign(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", valid()),
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*len(tokens))
	for range 8 {
		for _, tok := range tokens {
			wg.Go(func() {
				c, err := v.VerifyAt(tok, testNow)
				if err == nil && c.Role != "authenticated" {
					err = errors.New("wrong role " + c.Role)
				}
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// FuzzVerify checks that no input panics, that success always yields usable claims and that
// every error maps to a join reason.
func FuzzVerify(f *testing.F) {
	good, err := auth.SignHS256(testSecret, valid())
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{good, "", "a.b.c", "%", good + "%20", rawToken(`{"alg":"none"}`, `{}`, ""),
		rawToken(`{"alg":"HS256"}`, `{"exp":1e400,"role":"x"}`, "c2ln")} {
		f.Add(s)
	}
	v, err := auth.NewVerifier(auth.Config{Secret: testSecret})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.VerifyAt(tok, testNow)
		if err != nil {
			if c != nil || auth.JoinReason(err) == "" {
				t.Fatalf("err %v with claims %v / empty reason", err, c)
			}
			return
		}
		if c.Role == "" || !json.Valid(c.Raw) || !c.Exp.After(testNow) {
			t.Fatalf("bad claims %+v", c)
		}
	})
}
