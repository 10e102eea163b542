package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// Claims is the verified payload of a token. It is immutable once returned by
// [Verifier.Verify]: callers must not modify Raw or Map, and may share a *Claims between
// goroutines.
type Claims struct {
	// Role is the `role` claim (the PostgreSQL role used for RLS checks).
	Role string
	// Sub is the `sub` claim, or "" when absent or not a string.
	Sub string
	// Exp is the `exp` claim as a UTC time (sub-second precision kept).
	Exp time.Time
	// Raw is the whole claims object as canonical JSON: keys sorted at every level, no
	// insignificant whitespace, numbers kept verbatim except that fractional `exp`/`iat` are
	// rounded to integers (as the real server does). Suitable for
	// set_config('request.jwt.claims', ...).
	Raw json.RawMessage
	// Map is the decoded claims object; JSON numbers are json.Number so no precision is lost.
	Map map[string]any
}

// Key returns a string that is equal for two Claims exactly when their canonical JSON is
// equal; used to group subscribers that share one identity for RLS checks.
func (c *Claims) Key() string { return string(c.Raw) }

// LogValue implements slog.LogValuer. It logs role, sub and exp only; never the token or the
// other claims.
func (c *Claims) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("role", c.Role),
		slog.String("sub", c.Sub),
		slog.Time("exp", c.Exp),
	)
}

// ExpiresIn returns the time left until Exp as seen at now (negative once expired).
func (c *Claims) ExpiresIn(now time.Time) time.Duration { return c.Exp.Sub(now) }

// maxExpSeconds caps the exp used for Claims.Exp (end of year 9999) so that absurd values do
// not overflow time arithmetic; Raw keeps the original value.
const maxExpSeconds = 253402300799

// decodeClaims parses a JWT payload into a JSON object with numbers as json.Number.
func decodeClaims(payload []byte) (map[string]any, error) {
	m, err := decodeObject(payload)
	if err != nil {
		return nil, fmt.Errorf("%w (payload: %v)", ErrMalformed, err)
	}
	return m, nil
}

// decodeObject decodes exactly one JSON object, rejecting trailing data.
func decodeObject(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON object")
	}
	return m, nil
}

// validateClaims checks the claims of a token whose signature has been verified, in the
// real server's order: exp and iat types and expiry first, then presence of role and exp.
// Added to the real server's checks: `nbf` must be a number, `iat` and `nbf` may not be more
// than ClockLeeway in the future (ErrNotYetValid), and no claim string may contain NUL
// (ErrMalformed).
func validateClaims(m map[string]any, now time.Time) (*Claims, error) {
	var exp float64
	expRaw, hasExp := m["exp"]
	hasExp = hasExp && expRaw != nil
	if hasExp {
		n, ok := expRaw.(json.Number)
		if !ok {
			return nil, ErrExpInvalid
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || f <= 0 {
			return nil, ErrExpInvalid
		}
		exp = f
		m["exp"] = roundNumericDate(n, f)
	}
	var iatAt time.Time
	if iat, ok := m["iat"]; ok {
		n, ok := iat.(json.Number)
		if !ok {
			return nil, ErrIatInvalid
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, ErrIatInvalid
		}
		m["iat"] = roundNumericDate(n, f)
		iatAt = unixFloat(f)
	}
	var nbfAt time.Time
	if nbf, ok := m["nbf"]; ok && nbf != nil {
		n, ok := nbf.(json.Number)
		if !ok {
			return nil, ErrNbfInvalid
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, ErrNbfInvalid
		}
		nbfAt = unixFloat(f)
	}
	var expAt time.Time
	if hasExp {
		expAt = unixFloat(exp)
		if !expAt.After(now) {
			return nil, &ExpiredError{Seconds: int64(now.Sub(expAt) / time.Second)}
		}
	}
	// A token issued, or valid only from, further in the future than the clock
	// skew allowance is refused (docs/protocol.md §7.5).
	if limit := now.Add(ClockLeeway); iatAt.After(limit) || nbfAt.After(limit) {
		return nil, ErrNotYetValid
	}
	role, _ := m["role"].(string)
	if role == "" || !hasExp {
		return nil, ErrClaimsMissing
	}
	// PostgreSQL text and jsonb cannot hold NUL: such claims could never be
	// used for RLS checks, so the token is refused as malformed.
	if path, bad := findNUL(m, ""); bad {
		return nil, fmt.Errorf("%w (NUL character in claim %q)", ErrMalformed, path)
	}
	sub, _ := m["sub"].(string)
	raw, err := canonicalJSON(m)
	if err != nil {
		return nil, fmt.Errorf("%w (claims: %v)", ErrMalformed, err)
	}
	return &Claims{Role: role, Sub: sub, Exp: expAt, Raw: raw, Map: m}, nil
}

// ClockLeeway is how far in the future a token's `iat` or `nbf` may be before
// it is refused with ErrNotYetValid: the clock skew allowed between the
// issuer and this service.
const ClockLeeway = 30 * time.Second

// findNUL reports whether a string anywhere in v (object keys included)
// contains a NUL character, and the claim path where it was found.
func findNUL(v any, path string) (string, bool) {
	switch x := v.(type) {
	case string:
		return path, strings.IndexByte(x, 0) >= 0
	case map[string]any:
		for k, e := range x {
			p := path + "." + k
			if path == "" {
				p = k
			}
			if strings.IndexByte(k, 0) >= 0 {
				return p, true
			}
			if p, bad := findNUL(e, p); bad {
				return p, true
			}
		}
	case []any:
		for i, e := range x {
			if p, bad := findNUL(e, path+"["+strconv.Itoa(i)+"]"); bad {
				return p, true
			}
		}
	}
	return "", false
}

// roundNumericDate renders an exp/iat value as an integer when it fits int64, rounding
// fractions half away from zero; other values are kept verbatim.
func roundNumericDate(n json.Number, f float64) json.Number {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return json.Number(strconv.FormatInt(i, 10))
	}
	r := math.Round(f)
	if r >= -(1<<63) && r < 1<<63 {
		return json.Number(strconv.FormatInt(int64(r), 10))
	}
	return n
}

// unixFloat converts Unix seconds (possibly fractional, > 0) to a UTC time, capped at
// maxExpSeconds.
func unixFloat(sec float64) time.Time {
	if sec >= maxExpSeconds {
		return time.Unix(maxExpSeconds, 0).UTC()
	}
	whole, frac := math.Modf(sec)
	return time.Unix(int64(whole), int64(frac*1e9)).UTC()
}

// canonicalJSON encodes v compactly with sorted object keys and without HTML escaping.
func canonicalJSON(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return json.RawMessage(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}
