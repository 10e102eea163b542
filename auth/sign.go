package auth

import (
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// SignHS256 mints an HS256 token with header {"alg":"HS256","typ":"JWT"} over claims (nil
// means {}). It is meant for the dev command and tests; it does not add or check any claim.
// It fails only for an empty secret or claims that cannot be encoded as JSON.
func SignHS256(secret []byte, claims map[string]any) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("auth: sign HS256: empty secret")
	}
	if claims == nil {
		claims = map[string]any{}
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: sign HS256: %w", err)
	}
	return tok, nil
}
