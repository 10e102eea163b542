package jsonw

import (
	"encoding/json"
	"testing"
)

func TestAppendStringIsValidJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"b\\", "\n\r\t\b\f\x01\x1f", "é😀", "bad\xffutf8", "\x7f"} {
		out := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q → %s: %v", s, out, err)
		}
		if s == "bad\xffutf8" {
			if back != "bad\ufffdutf8" {
				t.Fatalf("invalid UTF-8 not replaced: %q", back)
			}
		} else if back != s {
			t.Fatalf("round trip %q → %q", s, back)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("a\"b")
	f.Fuzz(func(t *testing.T, s string) {
		if !json.Valid(AppendString(nil, s)) {
			t.Fatalf("invalid JSON for %q", s)
		}
	})
}
