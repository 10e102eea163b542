package rls

import "testing"

// parseUUID accepts what PostgreSQL's uuid_in accepts and allocates
// nothing on success (it runs per row and subscriber class).
func TestParseUUID(t *testing.T) {
	want := [16]byte{0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x41, 0x11, 0x81, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11}
	for _, s := range []string{"11111111-1111-4111-8111-111111111111", "{11111111111141118111111111111111}", "1111-1111-1111-4111-8111-1111-1111-1111"} {
		u, err := parseUUID(s)
		if err != nil || u != want {
			t.Fatalf("parseUUID(%q) = %x, %v", s, u, err)
		}
	}
	for _, s := range []string{"", "1111", "11111111-1111-4111-8111-11111111111g", "{11111111-1111-4111-8111-111111111111", "-11111111111141118111111111111111"} {
		if _, err := parseUUID(s); err == nil {
			t.Fatalf("parseUUID(%q) accepted", s)
		}
	}
	if n := testing.AllocsPerRun(100, func() { parseUUID("11111111-1111-4111-8111-111111111111") }); n != 0 {
		t.Fatalf("parseUUID allocates %v times per call", n)
	}
}

// The compiled comparison's fast path: a canonical text equals the uid's
// canonical text exactly when the parsed values are equal.
func TestCanonicalUUID(t *testing.T) {
	for _, s := range []string{"0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9", "ffffffff-ffff-ffff-ffff-ffffffffffff", "00000000-0000-0000-0000-000000000000"} {
		u, err := parseUUID(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := canonicalUUID(u); got != s || !isCanonicalUUID(s) {
			t.Fatalf("canonicalUUID(parseUUID(%q)) = %q, canonical %v", s, got, isCanonicalUUID(s))
		}
	}
	for _, s := range []string{"0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9", "{0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9}", "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f", "0a1b2c3d-4e5f-6071-8293a-4b5c6d7e8f9"} {
		if isCanonicalUUID(s) {
			t.Fatalf("isCanonicalUUID(%q) = true", s)
		}
	}
}
