package realtime

import (
	"strings"
	"testing"
)

// nonSpaceLen is a lower bound on a payload's compact length: whitespace
// between tokens does not count, so padding cannot get a track refused
// before it is compacted, and every other byte does.
func TestNonSpaceLen(t *testing.T) {
	padded := "{ \"a\" :\n\t\"x y\" ,\r\n \"b\": [1, 2] }" + strings.Repeat(" ", 1000)
	if got, want := nonSpaceLen([]byte(padded)), len(`{"a":"xy","b":[1,2]}`); got != want {
		t.Fatalf("nonSpaceLen = %d, want %d", got, want)
	}
	if got := nonSpaceLen([]byte(strings.Repeat("z", 70<<10))); got != 70<<10 {
		t.Fatalf("nonSpaceLen of 70 KiB of data = %d", got)
	}
}
