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
