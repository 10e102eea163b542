package auth_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/openrealtime/realtime/auth"
)

// hsRaw signs a payload given as literal JSON text, so key order is under the test's control.
func hsRaw(t *testing.T, payload string) string {
	t.Helper()
	signing := b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64([]byte(payload))
	return signing + "." + b64(hmacSHA256(testSecret, signing))
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func verifyOK(t *testing.T, token string) *auth.Claims {
	t.Helper()
	v, err := auth.NewVerifier(auth.Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.VerifyAt(token, testNow)
	if err != nil {
		t.Fatalf("VerifyAt: %v", err)
	}
	return c
}

func TestClaimsKey(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{
			name: "same claims, different key order and spacing",
			a:    `{"role":"authenticated","exp":1800003600,"sub":"u1","app_metadata":{"provider":"email","roles":["a","b"]}}`,
			b:    `{ "app_metadata" : { "roles" : ["a","b"], "provider" : "email" }, "sub":"u1", "exp":1800003600, "role":"authenticated" }`,
			same: true,
		},
		{
			name: "fractional exp rounds to the same value",
			a:    `{"role":"anon","exp":1800003600.2}`,
			b:    `{"exp":1800003600,"role":"anon"}`,
			same: true,
		},
		{
			name: "different sub",
			a:    `{"role":"authenticated","exp":1800003600,"sub":"u1"}`,
			b:    `{"role":"authenticated","exp":1800003600,"sub":"u2"}`,
		},
		{
			name: "different exp",
			a:    `{"role":"anon","exp":1800003600}`,
			b:    `{"role":"anon","exp":1800003601}`,
		},
		{
			name: "nested array order matters",
			a:    `{"role":"anon","exp":1800003600,"r":["a","b"]}`,
			b:    `{"role":"anon","exp":1800003600,"r":["b","a"]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := verifyOK(t, hsRaw(t, tt.a))
			cb := verifyOK(t, hsRaw(t, tt.b))
			if got := ca.Key() == cb.Key(); got != tt.same {
				t.Errorf("Key equal = %v, want %v\n a: %s\n b: %s", got, tt.same, ca.Key(), cb.Key())
			}
			if tt.same && !bytes.Equal(ca.Raw, cb.Raw) {
				t.Errorf("Raw differs: %s vs %s", ca.Raw, cb.Raw)
			}
		})
	}
}

func TestClaimsRawCanonical(t *testing.T) {
	c := verifyOK(t, hsRaw(t, `{"sub":"u1", "role":"authenticated",
		"exp":1800003600, "big":12345678901234567890123, "x":{"b":1.50,"a":"<&>"}, "iat":1.8e9}`))
	want := `{"big":12345678901234567890123,"exp":1800003600,"iat":1800000000,"role":"authenticated","sub":"u1","x":{"a":"<&>","b":1.50}}`
	if string(c.Raw) != want {
		t.Errorf("Raw =\n %s\nwant\n %s", c.Raw, want)
	}
	if c.Key() != want {
		t.Errorf("Key = %s", c.Key())
	}
}

func TestClaimsLogValue(t *testing.T) {
	tok := hsRaw(t, `{"role":"authenticated","sub":"u1","exp":1800003600,"email":"a@example.com"}`)
	c := verifyOK(t, tok)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("joined", "claims", c)
	out := buf.String()
	for _, want := range []string{"claims.role=authenticated", "claims.sub=u1", "claims.exp=2027-01-15T09:00:00.000Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
	for _, leak := range []string{"a@example.com", "email", tok[:20]} {
		if strings.Contains(out, leak) {
			t.Errorf("log %q contains %q", out, leak)
		}
	}
}

func TestClaimsExpiresIn(t *testing.T) {
	c := verifyOK(t, hsRaw(t, `{"role":"anon","exp":1800000060}`))
	if got := c.ExpiresIn(testNow); got != time.Minute {
		t.Errorf("ExpiresIn(now) = %v, want 1m", got)
	}
	if got := c.ExpiresIn(testNow.Add(90 * time.Second)); got != -30*time.Second {
		t.Errorf("ExpiresIn(now+90s) = %v, want -30s", got)
	}
}
