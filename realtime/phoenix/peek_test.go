package phoenix

import "testing"

// PeekHeader agrees with DecodeText on the header of every frame it
// accepts, and declines the forms it leaves to the full decoder.
func TestPeekHeader(t *testing.T) {
	for _, f := range []string{
		`["1","2","realtime:room","presence",{"type":"presence","event":"track","payload":{}}]`,
		` [ null , "7" , "realtime:a" , "broadcast" , {} ] `,
		`[3,4,"realtime:a","presence",null]`,
		`[null,null,"phoenix","heartbeat",{}]`,
	} {
		got, ok := PeekHeader([]byte(f))
		want, err := DecodeText(V2, []byte(f))
		if !ok || err != nil {
			t.Fatalf("%s: peek ok %v, decode err %v", f, ok, err)
		}
		want.Payload = nil
		if got.JoinRef != want.JoinRef || got.Ref != want.Ref || got.Topic != want.Topic || got.Event != want.Event {
			t.Fatalf("%s: peek %+v, decode %+v", f, got, want)
		}
	}
	for _, f := range []string{
		``, `{}`, `["1"]`, `["1","2","realtime:a"]`,
		`["1","2","realtime:\u0061","presence",{}]`, // escapes: decoded in full
		`["1","2",3,"presence",{}]`,                 // topic must be a string
		`[1.5,"2","realtime:a","presence",{}]`,      // fractions: decoded in full
		`[nul,"2","realtime:a","presence",{}]`,
	} {
		if m, ok := PeekHeader([]byte(f)); ok {
			t.Fatalf("%s: peek accepted %+v", f, m)
		}
	}
}
