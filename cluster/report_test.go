package cluster

import (
	"encoding/binary"
	"reflect"
	"testing"
)

func TestReportRoundTrip(t *testing.T) {
	in := map[string]ProjectReport{
		"alpha": {Clients: 3, EventsPerSecond: 12.5, PresenceEventsPerSecond: 0.25, JoinsPerPeriod: 7.125, SlotHolder: true, Slot: "supabase_realtime_slot_node_1"},
		"beta":  {Clients: 1},
		"gamma": {Slot: "s"},
	}
	out, err := decodeReport(encodeReport(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("got %+v, want %+v", out, in)
	}
	empty, err := decodeReport(encodeReport(nil))
	if err != nil || len(empty) != 0 {
		t.Fatalf("empty report: %v %v", empty, err)
	}
}

// A reader skips tags it does not know and reads a later version the same
// way, so nodes can add figures without breaking older ones.
func TestReportToleratesUnknownTags(t *testing.T) {
	var e []byte
	e = appendNum(e, 99, 12345)
	e = appendTag(e, tagRef, []byte("p"))
	e = appendTag(e, 100, []byte("a future field"))
	e = appendNum(e, tagClients, 4)
	data := []byte{reportVersion + 1}
	data = binary.AppendUvarint(data, 2)
	data = binary.AppendUvarint(data, uint64(len(e)))
	data = append(data, e...)
	// An entry without a ref is ignored.
	noRef := appendNum(nil, tagClients, 9)
	data = binary.AppendUvarint(data, uint64(len(noRef)))
	data = append(data, noRef...)
	got, err := decodeReport(data)
	if err != nil {
		t.Fatal(err)
	}
	if want := (map[string]ProjectReport{"p": {Clients: 4}}); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestReportRejectsDamage(t *testing.T) {
	good := encodeReport(map[string]ProjectReport{"a": {Clients: 1, Slot: "s"}, "b": {EventsPerSecond: 3}})
	for i := range len(good) {
		if _, err := decodeReport(good[:i]); err == nil {
			t.Fatalf("truncated at %d accepted", i)
		}
	}
	huge := binary.AppendUvarint([]byte{reportVersion}, maxReportProjects+1)
	if _, err := decodeReport(huge); err == nil {
		t.Fatal("absurd count accepted")
	}
	// A number tag whose value is not a uvarint.
	e := appendTag(appendTag(nil, tagRef, []byte("a")), tagClients, []byte{0x80})
	bad := binary.AppendUvarint(binary.AppendUvarint([]byte{reportVersion}, 1), uint64(len(e)))
	if _, err := decodeReport(append(bad, e...)); err == nil {
		t.Fatal("bad number accepted")
	}
}

// A heartbeat may have only its origin (the first version) or more fields
// than this version knows; other kinds keep their exact field count.
func TestHeartbeatFieldsOpenEnded(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		fields := [][]byte{[]byte("n1.abc"), encodeReport(map[string]ProjectReport{"p": {Clients: 2}}), []byte("later")}[:n]
		kind, _, got, err := decodeMessage(encodeFields(kindHeartbeat, 0, fields...))
		if err != nil || kind != kindHeartbeat || len(got) != n || string(got[0]) != "n1.abc" {
			t.Fatalf("%d fields: kind %d, %d fields, %v", n, kind, len(got), err)
		}
	}
	if _, _, _, err := decodeMessage(encodeFields(kindHeartbeat, 0)); err == nil {
		t.Fatal("heartbeat without an origin accepted")
	}
	if _, _, _, err := decodeMessage(encodeFields(kindQuery, 0, []byte("o"), []byte("q"), []byte("extra"))); err == nil {
		t.Fatal("query with an extra field accepted")
	}
}

func FuzzDecodeReport(f *testing.F) {
	f.Add(encodeReport(map[string]ProjectReport{"a": {Clients: 1, SlotHolder: true, Slot: "s", JoinsPerPeriod: 2}}))
	f.Add([]byte{})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeReport(data)
		if err != nil {
			return
		}
		again, err := decodeReport(encodeReport(r))
		if err != nil || len(again) != len(r) {
			t.Fatalf("re-encoding changed %x: %v", data, err)
		}
	})
}
