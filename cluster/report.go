package cluster

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
)

// ProjectReport is one project's figures in a node's heartbeat
// (docs/cluster.md "Cluster-wide limits"): what the cluster-wide limits
// and the inspector need to know of the other nodes.
type ProjectReport struct {
	// Clients are the node's open WebSocket connections and SSE streams.
	Clients int
	// EventsPerSecond is the node's rate of client broadcasts asked for
	// (admitted or refused): its demand, which splits the project's
	// events/s limit between the nodes.
	EventsPerSecond float64
	// PresenceEventsPerSecond is the node's rate of tracks and untracks
	// asked for, admitted or refused.
	PresenceEventsPerSecond float64
	// JoinsPerPeriod is the node's mean of admitted joins per period of the
	// project's join counter (joins per 5 s).
	JoinsPerPeriod float64
	// SlotHolder says the node holds the project's replication slot.
	SlotHolder bool
	// Slot names the replication slot the node holds or reads.
	Slot string
}

// zero reports whether r carries nothing: such a project is left out of
// the heartbeat (absent means zero).
func (r ProjectReport) zero() bool { return r == ProjectReport{} }

// add returns r with o's counters added; the slot fields stay r's.
func (r ProjectReport) add(o ProjectReport) ProjectReport {
	r.Clients += o.Clients
	r.EventsPerSecond += o.EventsPerSecond
	r.PresenceEventsPerSecond += o.PresenceEventsPerSecond
	r.JoinsPerPeriod += o.JoinsPerPeriod
	return r
}

// reportVersion is the first byte of a heartbeat's report. Readers of any
// version skip the tags they do not know; a change that adding tags cannot
// express gets a new heartbeat field instead.
const reportVersion = 1

// Tags of a project's entry in a report: each is followed by the length
// of its value and the value (a uvarint for numbers, rates in thousandths).
const (
	tagRef        = 1 // the project's ref (string)
	tagClients    = 2
	tagEvents     = 3 // events/s × 1000
	tagPresence   = 4 // presence events/s × 1000
	tagJoins      = 5 // joins per period × 1000
	tagSlotHolder = 6 // 1 when the node holds the slot
	tagSlot       = 7 // the slot's name (string)
)

// maxReportProjects bounds the entries a report may declare, so a damaged
// count cannot make the reader allocate much.
const maxReportProjects = 1 << 16

// encodeReport returns the heartbeat field of reports: version, count,
// then each project's tagged entry, length-prefixed, in ref order.
func encodeReport(reports map[string]ProjectReport) []byte {
	refs := make([]string, 0, len(reports))
	for ref := range reports {
		refs = append(refs, ref)
	}
	sort.Strings(refs)
	out := []byte{reportVersion}
	out = binary.AppendUvarint(out, uint64(len(refs)))
	var e []byte
	for _, ref := range refs {
		r := reports[ref]
		e = appendTag(e[:0], tagRef, []byte(ref))
		e = appendNum(e, tagClients, uint64(max(r.Clients, 0)))
		e = appendNum(e, tagEvents, milli(r.EventsPerSecond))
		e = appendNum(e, tagPresence, milli(r.PresenceEventsPerSecond))
		e = appendNum(e, tagJoins, milli(r.JoinsPerPeriod))
		if r.SlotHolder {
			e = appendNum(e, tagSlotHolder, 1)
		}
		if r.Slot != "" {
			e = appendTag(e, tagSlot, []byte(r.Slot))
		}
		out = binary.AppendUvarint(out, uint64(len(e)))
		out = append(out, e...)
	}
	return out
}

// milli is v in thousandths, rounded; negative and non-finite values are 0.
func milli(v float64) uint64 {
	if !(v > 0) || math.IsInf(v, 1) {
		return 0
	}
	return uint64(math.Round(v * 1000))
}

func appendTag(b []byte, tag uint64, v []byte) []byte {
	b = binary.AppendUvarint(b, tag)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendNum(b []byte, tag, v uint64) []byte {
	var buf [binary.MaxVarintLen64]byte
	return appendTag(b, tag, binary.AppendUvarint(buf[:0], v))
}

// decodeReport reads a heartbeat's report: the reports by project ref.
// Unknown tags are skipped; an entry without a ref is ignored.
func decodeReport(data []byte) (map[string]ProjectReport, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty report", errBadMessage)
	}
	rest := data[1:] // any version: tags are read the same way
	count, n := binary.Uvarint(rest)
	if n <= 0 || count > maxReportProjects {
		return nil, fmt.Errorf("%w: report count", errBadMessage)
	}
	rest = rest[n:]
	out := make(map[string]ProjectReport, min(count, 64))
	for i := range count {
		l, n := binary.Uvarint(rest)
		if n <= 0 || l > uint64(len(rest)-n) {
			return nil, fmt.Errorf("%w: report entry %d", errBadMessage, i)
		}
		ref, r, err := decodeEntry(rest[n : n+int(l)])
		if err != nil {
			return nil, fmt.Errorf("%w (entry %d)", err, i)
		}
		if ref != "" {
			out[ref] = r
		}
		rest = rest[n+int(l):]
	}
	return out, nil
}

// decodeEntry reads one project's tagged entry.
func decodeEntry(e []byte) (string, ProjectReport, error) {
	var ref string
	var r ProjectReport
	for len(e) > 0 {
		tag, n := binary.Uvarint(e)
		if n <= 0 {
			return "", r, fmt.Errorf("%w: report tag", errBadMessage)
		}
		e = e[n:]
		l, n := binary.Uvarint(e)
		if n <= 0 || l > uint64(len(e)-n) {
			return "", r, fmt.Errorf("%w: report tag %d length", errBadMessage, tag)
		}
		v := e[n : n+int(l)]
		e = e[n+int(l):]
		num := func() (uint64, error) {
			x, k := binary.Uvarint(v)
			if k <= 0 {
				return 0, fmt.Errorf("%w: report tag %d value", errBadMessage, tag)
			}
			return x, nil
		}
		var x uint64
		var err error
		switch tag {
		case tagRef:
			ref = string(v)
		case tagSlot:
			r.Slot = string(v)
		case tagClients, tagEvents, tagPresence, tagJoins, tagSlotHolder:
			if x, err = num(); err != nil {
				return "", r, err
			}
		}
		switch tag {
		case tagClients:
			r.Clients = int(min(x, math.MaxInt32))
		case tagEvents:
			r.EventsPerSecond = float64(x) / 1000
		case tagPresence:
			r.PresenceEventsPerSecond = float64(x) / 1000
		case tagJoins:
			r.JoinsPerPeriod = float64(x) / 1000
		case tagSlotHolder:
			r.SlotHolder = x != 0
		}
	}
	return ref, r, nil
}
