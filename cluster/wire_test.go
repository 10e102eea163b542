package cluster

import (
	"bytes"
	"strings"
	"testing"

	"github.com/openrealtime/realtime/channels"
)

func TestBroadcastRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		e    channels.Envelope
	}{
		{"text", channels.Envelope{Topic: "public|realtime:room1", Broadcast: &channels.Broadcast{Event: "msg", Payload: []byte(`{"a":1}`)}}},
		{"binary with meta", channels.Envelope{Topic: "private|realtime:r", Broadcast: &channels.Broadcast{Event: "bin", Payload: []byte{0, 1, 2, 255}, Binary: true, Meta: []byte(`{"id":"x"}`)}}},
		{"verbatim", channels.Envelope{Topic: "public|realtime:v", Broadcast: &channels.Broadcast{Event: "e", Payload: []byte(`1`), Verbatim: []byte(`{"type":"broadcast","event":"e","payload":1}`)}}},
		{"database id", channels.Envelope{Topic: "public|realtime:d", Broadcast: &channels.Broadcast{Event: "e", Payload: []byte(`{}`), ID: "0190-abc"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.e.Kind = channels.EnvelopeBroadcast
			c.e.Origin = 42
			got, err := decodeBroadcast(encodeBroadcast(&c.e))
			if err != nil {
				t.Fatal(err)
			}
			w, g := c.e.Broadcast, got.Broadcast
			if got.Topic != c.e.Topic || got.Origin != 0 || g.Event != w.Event || g.Binary != w.Binary || g.ID != w.ID ||
				!bytes.Equal(g.Payload, w.Payload) || !bytes.Equal(g.Meta, w.Meta) || !bytes.Equal(g.Verbatim, w.Verbatim) ||
				(w.Verbatim == nil) != (g.Verbatim == nil) {
				t.Fatalf("got %+v %+v, want %+v %+v", got, g, c.e, w)
			}
		})
	}
}

func TestDecodeRejectsDamage(t *testing.T) {
	good := encodeBroadcast(&channels.Envelope{Kind: channels.EnvelopeBroadcast, Topic: "public|t", Broadcast: &channels.Broadcast{Event: "e", Payload: []byte("{}")}})
	for i := 0; i < len(good); i++ {
		if _, err := decodeBroadcast(good[:i]); err == nil {
			t.Fatalf("truncated at %d accepted", i)
		}
	}
	if _, err := decodeBroadcast(append(good, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	bad := append([]byte(nil), good...)
	bad[0] = 9
	if _, err := decodeBroadcast(bad); err == nil {
		t.Fatal("unknown version accepted")
	}
}

func TestTopicToken(t *testing.T) {
	short := topicToken("public|realtime:a.b *>")
	if !strings.HasPrefix(short, "k") || strings.ContainsAny(short, ".*> ") {
		t.Fatalf("short token %q", short)
	}
	long := topicToken("public|realtime:" + strings.Repeat("x", 200))
	if !strings.HasPrefix(long, "h") || len(long) != 33 {
		t.Fatalf("long token %q", long)
	}
	if topicToken("public|a") == topicToken("private|a") {
		t.Fatal("namespaces share a token")
	}
}

func FuzzDecodeBroadcast(f *testing.F) {
	f.Add(encodeBroadcast(&channels.Envelope{Kind: channels.EnvelopeBroadcast, Topic: "public|t", Broadcast: &channels.Broadcast{Event: "e", Payload: []byte("{}")}}))
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add(encodeFields(kindPresence, 0, []byte("public|t"), []byte("n1.abc"), []byte(`{"joins":{},"leaves":{}}`)))
	f.Add(encodeFields(kindHeartbeat, 0, []byte("n1.abc")))
	f.Fuzz(func(t *testing.T, data []byte) {
		if kind, _, fields, err := decodeMessage(data); err == nil && (len(fields) < fieldCount(kind) || !openEnded(kind) && len(fields) != fieldCount(kind)) {
			t.Fatalf("kind %d decoded with %d fields", kind, len(fields))
		}
		e, err := decodeBroadcast(data)
		if err != nil {
			return
		}
		again, err := decodeBroadcast(encodeBroadcast(e))
		if err != nil || again.Topic != e.Topic || !bytes.Equal(again.Broadcast.Payload, e.Broadcast.Payload) {
			t.Fatalf("re-encoding changed %x", data)
		}
	})
}
