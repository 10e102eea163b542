package auth_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/openrealtime/realtime/auth"
)

func TestSignHS256(t *testing.T) {
	tok, err := auth.SignHS256(testSecret, map[string]any{"role": "service_role", "exp": testNow.Unix() + 60, "sub": "user-1"})
	if err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(tok, ".")
	h, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil || string(h) != `{"alg":"HS256","typ":"JWT"}` {
		t.Errorf("header = %s (%v)", h, err)
	}
	v, err := auth.NewVerifier(auth.Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.VerifyAt(tok, testNow)
	if err != nil {
		t.Fatalf("VerifyAt(SignHS256 token) = %v", err)
	}
	if c.Role != "service_role" || c.Sub != "user-1" || c.Exp.Unix() != testNow.Unix()+60 {
		t.Errorf("claims = %+v", c)
	}
	other, err := auth.NewVerifier(auth.Config{Secret: []byte("another secret")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.VerifyAt(tok, testNow); err == nil {
		t.Error("token verified with another secret")
	}
}

func TestSignHS256Errors(t *testing.T) {
	if _, err := auth.SignHS256(nil, map[string]any{"role": "anon"}); err == nil {
		t.Error("SignHS256 with empty secret succeeded")
	}
	if _, err := auth.SignHS256(testSecret, map[string]any{"bad": make(chan int)}); err == nil {
		t.Error("SignHS256 with unencodable claims succeeded")
	}
	tok, err := auth.SignHS256(testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, payload, _ := strings.Cut(tok, ".")
	payload, _, _ = strings.Cut(payload, ".")
	if p, _ := base64.RawURLEncoding.DecodeString(payload); string(p) != "{}" {
		t.Errorf("nil claims payload = %s, want {}", p)
	}
}
