package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Sentinel errors returned (possibly wrapped) by [Verifier.Verify]. Test with errors.Is.
// None of their texts is meant for clients: use [ConnectMessage], [JoinReason] or
// [SystemMessage] to get the wire text.
var (
	// ErrMissingToken means the token was empty (after URL-decoding and whitespace removal).
	ErrMissingToken = errors.New("auth: missing token")
	// ErrMalformed means the token is not a compact JWS with a JSON object header and payload.
	ErrMalformed = errors.New("auth: token is not a valid JWT")
	// ErrSignature means a key was found for the token but the signature does not match it.
	ErrSignature = errors.New("auth: invalid JWT signature")
	// ErrSigner means no verification key can be built for the token: unsupported or missing
	// alg (including "none"), or no suitable secret/JWKS key. A [*SignerKidError] also matches it.
	ErrSigner = errors.New("auth: cannot build JWT signer")
	// ErrClaimsMissing means the verified claims lack a string `role` or the `exp` claim.
	ErrClaimsMissing = errors.New("auth: claims role and exp are required")
	// ErrExpInvalid means `exp` is not a usable number, or is <= 0.
	ErrExpInvalid = errors.New("auth: invalid exp claim")
	// ErrIatInvalid means `iat` is present but not a number.
	ErrIatInvalid = errors.New("auth: invalid iat claim")
	// ErrNbfInvalid means `nbf` is present but not a number.
	ErrNbfInvalid = errors.New("auth: invalid nbf claim")
	// ErrNotYetValid means `iat` or `nbf` is later than now plus [ClockLeeway].
	ErrNotYetValid = errors.New("auth: token not valid yet")
	// ErrTokenExpired matches every [*ExpiredError].
	ErrTokenExpired = errors.New("auth: token expired")
)

// ExpiredError reports a token whose `exp` is not strictly after the verification time.
// errors.Is(err, ErrTokenExpired) is true for it.
type ExpiredError struct {
	// Seconds is how long ago the token expired (now - exp, whole seconds rounded down, >= 0).
	Seconds int64
}

// Error implements error.
func (e *ExpiredError) Error() string {
	return "auth: token expired " + strconv.FormatInt(e.Seconds, 10) + " seconds ago"
}

// Unwrap returns ErrTokenExpired.
func (e *ExpiredError) Unwrap() error { return ErrTokenExpired }

// SignerKidError is the signer error for a token that names a key ID (`kid`) for which no
// usable key exists (unknown kid, key of the wrong type or curve, or an HS token while no
// secret is configured). errors.Is(err, ErrSigner) is true for it.
type SignerKidError struct {
	// Kid is the key ID from the token header, verbatim.
	Kid string
	// Reason says why no key could be used; for logs only.
	Reason string
}

// Error implements error.
func (e *SignerKidError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("auth: cannot build JWT signer for kid %q", e.Kid)
	}
	return fmt.Sprintf("auth: cannot build JWT signer for kid %q: %s", e.Kid, e.Reason)
}

// Unwrap returns ErrSigner.
func (e *SignerKidError) Unwrap() error { return ErrSigner }

// Client-facing texts (docs/protocol.md §1.2, §7.1, §7.5).
const (
	msgMissingKey    = "API key is missing"
	msgExpiredShort  = "Token has expired"
	msgClaimsMissing = "Fields `role` and `exp` are required in JWT"
	msgMalformed     = "The token provided is not a valid JWT"
	msgSignature     = "Failed to validate JWT signature"
	msgSigner        = "Failed to generate JWT signer, check your JWT secret or JWKS configuration"
	msgExpInvalid    = "Token expiration time is invalid"
	msgIatInvalid    = "Token issued at time (iat) is invalid"
	msgNbfInvalid    = "Token not before time (nbf) is invalid"
	msgNotYetValid   = "Token is not valid yet"
	msgConnectOther  = "Error connecting to Realtime"
	msgJoinOther     = "Unknown Error on Channel"

	codeInvalidToken = "InvalidJWTToken: "
	codeMalformed    = "MalformedJWT: "
	codeSignature    = "JwtSignatureError: "
	codeSigner       = "JwtSignerError: "
)

// signerKidMessage is the kid variant of msgSigner. The kid is quoted like Go's %q, which
// matches the real server's quoting for printable kids.
func signerKidMessage(kid string) string {
	return "Failed to generate JWT signer for key ID (kid) " + strconv.Quote(kid) +
		", check your JWT secret or JWKS configuration"
}

func expiredMessage(seconds int64) string {
	return "Token has expired " + strconv.FormatInt(seconds, 10) + " seconds ago"
}

// ConnectMessage returns the `error` text of the HTTP rejection of a WebSocket upgrade
// (docs/protocol.md §1.2) for an error returned by [Verifier.Verify]. Unknown errors give
// "Error connecting to Realtime". Unlike the real server (which answers 500 "Error connecting
// to Realtime"), a bad `exp`, `iat` or `nbf` gets its own text and a 401.
func ConnectMessage(err error) string {
	var kidErr *SignerKidError
	switch {
	case errors.Is(err, ErrMissingToken):
		return msgMissingKey
	case errors.Is(err, ErrTokenExpired):
		return msgExpiredShort
	case errors.Is(err, ErrClaimsMissing):
		return msgClaimsMissing
	case errors.Is(err, ErrMalformed):
		return msgMalformed
	case errors.Is(err, ErrSignature):
		return msgSignature
	case errors.As(err, &kidErr):
		return signerKidMessage(kidErr.Kid)
	case errors.Is(err, ErrSigner):
		return msgSigner
	case errors.Is(err, ErrExpInvalid):
		return msgExpInvalid
	case errors.Is(err, ErrIatInvalid):
		return msgIatInvalid
	case errors.Is(err, ErrNbfInvalid):
		return msgNbfInvalid
	case errors.Is(err, ErrNotYetValid):
		return msgNotYetValid
	default:
		return msgConnectOther
	}
}

// ConnectStatus returns the HTTP status that goes with [ConnectMessage]: 401 for the token
// errors that have their own text, 500 for everything else.
func ConnectStatus(err error) int {
	if ConnectMessage(err) == msgConnectOther {
		return http.StatusInternalServerError
	}
	return http.StatusUnauthorized
}

// JoinReason returns the `response.reason` of a phx_join error reply (docs/protocol.md §7.5) for
// an error returned by [Verifier.Verify], e.g. "InvalidJWTToken: Token has expired 10 seconds
// ago". An empty token reads as malformed, as an empty access_token does on the real server.
// Unknown errors give "Unknown Error on Channel".
func JoinReason(err error) string {
	var (
		kidErr *SignerKidError
		expErr *ExpiredError
	)
	switch {
	case errors.As(err, &expErr):
		return codeInvalidToken + expiredMessage(expErr.Seconds)
	case errors.Is(err, ErrClaimsMissing):
		return codeInvalidToken + msgClaimsMissing
	case errors.Is(err, ErrExpInvalid):
		return codeInvalidToken + msgExpInvalid
	case errors.Is(err, ErrNbfInvalid):
		return codeInvalidToken + msgNbfInvalid
	case errors.Is(err, ErrNotYetValid):
		return codeInvalidToken + msgNotYetValid
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrMissingToken):
		return codeMalformed + msgMalformed
	case errors.Is(err, ErrSignature):
		return codeSignature + msgSignature
	case errors.As(err, &kidErr):
		return codeSigner + signerKidMessage(kidErr.Kid)
	case errors.Is(err, ErrSigner):
		return codeSigner + msgSigner
	default:
		return msgJoinOther
	}
}

// SystemMessage returns the `message` of the channel `system` error sent before phx_close
// when an access_token push fails or the channel's token expires (docs/protocol.md §7.1), e.g.
// "Token has expired 0 seconds ago". It is the join reason without its code prefix; unknown
// errors give "Unknown Error on Channel".
func SystemMessage(err error) string {
	var (
		kidErr *SignerKidError
		expErr *ExpiredError
	)
	switch {
	case errors.As(err, &expErr):
		return expiredMessage(expErr.Seconds)
	case errors.Is(err, ErrClaimsMissing):
		return msgClaimsMissing
	case errors.Is(err, ErrExpInvalid):
		return msgExpInvalid
	case errors.Is(err, ErrIatInvalid):
		return msgIatInvalid
	case errors.Is(err, ErrNbfInvalid):
		return msgNbfInvalid
	case errors.Is(err, ErrNotYetValid):
		return msgNotYetValid
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrMissingToken):
		return msgMalformed
	case errors.Is(err, ErrSignature):
		return msgSignature
	case errors.As(err, &kidErr):
		return signerKidMessage(kidErr.Kid)
	case errors.Is(err, ErrSigner):
		return msgSigner
	default:
		return msgJoinOther
	}
}
