package main

import (
	"bytes"
	"testing"

	"github.com/openrealtime/realtime/realtime/phoenix"
)

func TestSplitDeliveryAgreesWithDecoder(t *testing.T) {
	frames := []string{
		`["1","2","realtime:bench-0","postgres_changes",{"data":{"record":{"m":1}},"ids":[3]}]`,
		`[null,null,"realtime:x","broadcast",{"event":"e","payload":{"m":1,"t":2}}]`,
		` [ 7 , 12 , "realtime:y" , "broadcast" , {"a":[1,2,"]"]} ] `,
	}
	for _, f := range frames {
		topic, change, payload, ok := splitDelivery([]byte(f))
		if !ok {
			t.Fatalf("%s: not split", f)
		}
		m, err := phoenix.DecodeText(phoenix.V2, []byte(f))
		if err != nil {
			t.Fatal(err)
		}
		if string(topic) != m.Topic || change != (m.Event == "postgres_changes") || !bytes.Equal(payload, m.Payload) {
			t.Fatalf("%s: split %q %v %s, decoder %q %q %s", f, topic, change, payload, m.Topic, m.Event, m.Payload)
		}
	}
	for _, f := range []string{
		`["1","2","realtime:x","phx_reply",{"status":"ok"}]`,
		`["1","2","realtime:\"x","broadcast",{}]`,
		`["1","2","realtime:x","broadcast",{}`,
		`{"topic":"realtime:x","event":"broadcast"}`,
		`["1","2","realtime:x"]`,
	} {
		if _, _, _, ok := splitDelivery([]byte(f)); ok {
			t.Fatalf("%s: split, want the full decoder", f)
		}
	}
}
