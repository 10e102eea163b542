package phoenix

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func TestDecodeTextV2(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    Message
		wantErr bool
	}{
		{"join", `["6","6","realtime:room1","phx_join",{"config":{}}]`, Message{JoinRef: "6", Ref: "6", Topic: "realtime:room1", Event: "phx_join", Payload: json.RawMessage(`{"config":{}}`)}, false},
		{"heartbeat null join_ref", `[null,"10","phoenix","heartbeat",{}]`, Message{Ref: "10", Topic: "phoenix", Event: "heartbeat", Payload: json.RawMessage(`{}`)}, false},
		{"numeric ref", `[null,11,"phoenix","heartbeat",{}]`, Message{Ref: "11", Topic: "phoenix", Event: "heartbeat", Payload: json.RawMessage(`{}`)}, false},
		{"extra elements ignored", `[null,"1","t","e",{},"x"]`, Message{Ref: "1", Topic: "t", Event: "e", Payload: json.RawMessage(`{}`)}, false},
		{"null payload", `[null,"1","t","e",null]`, Message{Ref: "1", Topic: "t", Event: "e"}, false},
		{"too short", `[null,"1","t","e"]`, Message{}, true},
		{"object in v2", `{"topic":"t"}`, Message{}, true},
		{"not json", `hello`, Message{}, true},
		{"topic not string", `[null,"1",5,"e",{}]`, Message{}, true},
		{"ref is object", `[null,{},"t","e",{}]`, Message{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeText(V2, []byte(tc.in))
			if tc.wantErr {
				if err == nil || !errors.Is(err, ErrBadFrame) {
					t.Fatalf("want ErrBadFrame, got %v (%+v)", err, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.JoinRef != tc.want.JoinRef || got.Ref != tc.want.Ref || got.Topic != tc.want.Topic || got.Event != tc.want.Event || !bytes.Equal(got.Payload, tc.want.Payload) {
				t.Fatalf("got %+v want %+v", got, tc.want)
			}
		})
	}
}

func TestDecodeTextV1(t *testing.T) {
	got, err := DecodeText(V1, []byte(`{"topic":"realtime:room2","event":"phx_join","payload":{"config":{}},"ref":"6","join_ref":"6"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.Topic != "realtime:room2" || got.Event != "phx_join" || got.Ref != "6" || got.JoinRef != "6" || string(got.Payload) != `{"config":{}}` {
		t.Fatalf("got %+v", got)
	}
	if _, err := DecodeText(V1, []byte(`{"event":"x"}`)); err == nil {
		t.Fatal("missing topic accepted")
	}
	if _, err := DecodeText(V1, []byte(`["1","1","t","e",{}]`)); err == nil {
		t.Fatal("array accepted in vsn 1")
	}
}

func TestAppendText(t *testing.T) {
	v2 := AppendText(nil, V2, "6", "", "realtime:room1", "system", []byte(`{"a":1}`))
	if string(v2) != `["6",null,"realtime:room1","system",{"a":1}]` {
		t.Fatalf("v2: %s", v2)
	}
	v1 := AppendText(nil, V1, "6", "7", "realtime:room1", "phx_reply", nil)
	if string(v1) != `{"topic":"realtime:room1","event":"phx_reply","payload":{},"ref":"7"}` {
		t.Fatalf("v1: %s", v1)
	}
	// Strings that need escaping round-trip through a JSON decoder.
	odd := "q\"b\\n\n\t\x01é"
	out := AppendText(nil, V2, "", "", odd, odd, nil)
	var arr []any
	if err := json.Unmarshal(out, &arr); err != nil {
		t.Fatalf("invalid JSON %q: %v", out, err)
	}
	if arr[2] != odd || arr[3] != odd || arr[0] != nil {
		t.Fatalf("round trip: %#v", arr)
	}
}

func TestBinaryPushProbeBytes(t *testing.T) {
	// Bytes captured from realtime-js 2.119.0 (docs/protocol.md §1.3).
	frame := append([]byte{3, 1, 1, 14, 3, 0, 1}, []byte("69realtime:room1msg{\"hello\":\"world\"}")...)
	p, err := DecodeBroadcastPush(frame)
	if err != nil {
		t.Fatal(err)
	}
	if p.JoinRef != "6" || p.Ref != "9" || p.Topic != "realtime:room1" || p.Event != "msg" || p.Encoding != EncodingJSON || string(p.Payload) != `{"hello":"world"}` || p.Meta != nil {
		t.Fatalf("got %+v", p)
	}
	again, err := AppendBroadcastPush(nil, "6", "9", "realtime:room1", "msg", nil, EncodingJSON, []byte(`{"hello":"world"}`))
	if err != nil || !bytes.Equal(again, frame) {
		t.Fatalf("re-encode: %v %q", err, again)
	}
}

func TestBinaryPushErrors(t *testing.T) {
	bad := map[string][]byte{
		"empty":          {},
		"short header":   {3, 1, 1},
		"wrong kind":     {4, 0, 0, 0, 0, 0, 1},
		"bad encoding":   {3, 0, 0, 0, 0, 0, 7},
		"lengths exceed": append([]byte{3, 1, 1, 200, 3, 0, 1}, "69abc"...),
		"meta exceeds":   {3, 0, 0, 0, 0, 255, 1, '{'},
	}
	for name, b := range bad {
		if _, err := DecodeBroadcastPush(b); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: want ErrBadFrame, got %v", name, err)
		}
	}
}

func TestBroadcastKind4(t *testing.T) {
	f, err := AppendBroadcast(nil, "realtime:room1", "msg", nil, EncodingJSON, []byte(`{"hello":"world"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{4, 14, 3, 0, 1}, "realtime:room1msg{\"hello\":\"world\"}"...)
	if !bytes.Equal(f, want) {
		t.Fatalf("got %q", f)
	}
	d, err := DecodeBroadcast(f)
	if err != nil || d.Topic != "realtime:room1" || d.Event != "msg" || string(d.Payload) != `{"hello":"world"}` {
		t.Fatalf("decode: %v %+v", err, d)
	}
	long := string(bytes.Repeat([]byte("x"), 256))
	if _, err := AppendBroadcast(nil, long, "e", nil, EncodingJSON, nil); !errors.Is(err, ErrFieldTooLong) {
		t.Fatalf("256-byte topic: %v", err)
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{"": V1, "1.0.0": V1, "2.0.0": V2, "2.1.0": V2} {
		if v, ok := ParseVersion(in); !ok || v != want {
			t.Errorf("%q: %v %v", in, v, ok)
		}
	}
	for _, in := range []string{"3.0.0", "x", "10.0"} {
		if _, ok := ParseVersion(in); ok {
			t.Errorf("%q accepted", in)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to every decoder: none may panic, and a
// decoded binary push must re-encode to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`["6","6","realtime:room1","phx_join",{"config":{}}]`))
	f.Add([]byte(`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}`))
	f.Add(append([]byte{3, 1, 1, 14, 3, 0, 1}, []byte("69realtime:room1msg{}")...))
	f.Add([]byte{3, 255, 255, 255, 255, 255, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		DecodeText(V1, data)
		DecodeText(V2, data)
		DecodeBroadcast(data)
		p, err := DecodeBroadcastPush(data)
		if err != nil {
			return
		}
		out, err := AppendBroadcastPush(nil, p.JoinRef, p.Ref, p.Topic, p.Event, p.Meta, p.Encoding, p.Payload)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("round trip changed bytes:\n%q\n%q", data, out)
		}
	})
}
