package auth_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/openrealtime/realtime/auth"
)

func TestErrorMapping(t *testing.T) {
	kid := &auth.SignerKidError{Kid: `k"1`, Reason: "unknown kid"}
	kidText := `Failed to generate JWT signer for key ID (kid) "k\"1", check your JWT secret or JWKS configuration`
	signer := "Failed to generate JWT signer, check your JWT secret or JWKS configuration"
	tests := []struct {
		name    string
		err     error
		connect string
		status  int
		join    string
		system  string
	}{
		{"missing", auth.ErrMissingToken, "API key is missing", 401,
			"MalformedJWT: The token provided is not a valid JWT", "The token provided is not a valid JWT"},
		{"expired", &auth.ExpiredError{Seconds: 42}, "Token has expired", 401,
			"InvalidJWTToken: Token has expired 42 seconds ago", "Token has expired 42 seconds ago"},
		{"expired wrapped", fmt.Errorf("realtime: join: %w", &auth.ExpiredError{}), "Token has expired", 401,
			"InvalidJWTToken: Token has expired 0 seconds ago", "Token has expired 0 seconds ago"},
		{"claims", auth.ErrClaimsMissing, "Fields `role` and `exp` are required in JWT", 401,
			"InvalidJWTToken: Fields `role` and `exp` are required in JWT", "Fields `role` and `exp` are required in JWT"},
		{"malformed", auth.ErrMalformed, "The token provided is not a valid JWT", 401,
			"MalformedJWT: The token provided is not a valid JWT", "The token provided is not a valid JWT"},
		{"signature", auth.ErrSignature, "Failed to validate JWT signature", 401,
			"JwtSignatureError: Failed to validate JWT signature", "Failed to validate JWT signature"},
		{"signer", auth.ErrSigner, signer, 401, "JwtSignerError: " + signer, signer},
		{"signer kid", kid, kidText, 401, "JwtSignerError: " + kidText, kidText},
		{"signer kid wrapped", fmt.Errorf("x: %w", kid), kidText, 401, "JwtSignerError: " + kidText, kidText},
		{"exp invalid", auth.ErrExpInvalid, "Token expiration time is invalid", 401,
			"InvalidJWTToken: Token expiration time is invalid", "Token expiration time is invalid"},
		{"iat invalid", auth.ErrIatInvalid, "Token issued at time (iat) is invalid", 401,
			"Unknown Error on Channel", "Token issued at time (iat) is invalid"},
		{"nbf invalid", auth.ErrNbfInvalid, "Token not before time (nbf) is invalid", 401,
			"InvalidJWTToken: Token not before time (nbf) is invalid", "Token not before time (nbf) is invalid"},
		{"not yet valid", fmt.Errorf("x: %w", auth.ErrNotYetValid), "Token is not valid yet", 401,
			"InvalidJWTToken: Token is not valid yet", "Token is not valid yet"},
		{"unknown", io.EOF, "Error connecting to Realtime", 500, "Unknown Error on Channel", "Unknown Error on Channel"},
		{"nil", nil, "Error connecting to Realtime", 500, "Unknown Error on Channel", "Unknown Error on Channel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := auth.ConnectMessage(tt.err); got != tt.connect {
				t.Errorf("ConnectMessage = %q, want %q", got, tt.connect)
			}
			if got := auth.ConnectStatus(tt.err); got != tt.status {
				t.Errorf("ConnectStatus = %d, want %d", got, tt.status)
			}
			if got := auth.JoinReason(tt.err); got != tt.join {
				t.Errorf("JoinReason = %q, want %q", got, tt.join)
			}
			if got := auth.SystemMessage(tt.err); got != tt.system {
				t.Errorf("SystemMessage = %q, want %q", got, tt.system)
			}
		})
	}
}

func TestErrorIdentity(t *testing.T) {
	exp := &auth.ExpiredError{Seconds: 5}
	if !errors.Is(exp, auth.ErrTokenExpired) || errors.Is(exp, auth.ErrExpInvalid) {
		t.Errorf("ExpiredError Is: ErrTokenExpired=%v ErrExpInvalid=%v",
			errors.Is(exp, auth.ErrTokenExpired), errors.Is(exp, auth.ErrExpInvalid))
	}
	var gotExp *auth.ExpiredError
	if !errors.As(fmt.Errorf("wrap: %w", exp), &gotExp) || gotExp.Seconds != 5 {
		t.Errorf("errors.As ExpiredError failed: %v", gotExp)
	}
	kid := &auth.SignerKidError{Kid: "abc", Reason: "unknown kid"}
	if !errors.Is(kid, auth.ErrSigner) {
		t.Error("SignerKidError is not ErrSigner")
	}
	if !strings.Contains(kid.Error(), `"abc"`) {
		t.Errorf("SignerKidError text %q lacks the kid", kid.Error())
	}
	sentinels := []error{auth.ErrMissingToken, auth.ErrMalformed, auth.ErrSignature, auth.ErrSigner,
		auth.ErrClaimsMissing, auth.ErrExpInvalid, auth.ErrIatInvalid, auth.ErrNbfInvalid, auth.ErrNotYetValid, auth.ErrTokenExpired}
	for i, a := range sentinels {
		for j, b := range sentinels {
			if (i == j) != errors.Is(a, b) {
				t.Errorf("errors.Is(%v, %v) = %v", a, b, errors.Is(a, b))
			}
		}
	}
}
