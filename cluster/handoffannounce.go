package cluster

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
)

// Announcements on core NATS (docs/cluster.md "Change hand-off"): the
// holder announces each batch before the stream holds it (fastHeader), the
// positions it confirms past its last change (coveredHeader), and, once the
// stream acknowledged a batch, which stream messages hold it (seqHeader);
// a reader delivers what continues its high-water mark and skips the
// stream messages of batches it delivered that way.

// fastHeader names the header of a batch announced on core NATS: the
// position after which the holder has published every change, up to this
// batch, in the same session (docs/cluster.md "Change hand-off").
const fastHeader = "Rt-Prev"

// sendFast announces a batch that fits one message on core NATS, with the
// position after which the holder published every change up to it
// (s.prev), to every node's consumer, this node's included. Best effort: a
// consumer that misses it reads the batch from the stream.
func (h *Handoff) sendFast(s *sent) {
	if len(s.body) > h.chunkLimit() {
		return
	}
	m := nats.NewMsg(h.fastSubject)
	m.Data = s.body
	m.Header.Set(batchHeader, fmt.Sprintf("%d %d 0 1", s.first, s.last))
	m.Header.Set(fastHeader, strconv.FormatUint(s.prev, 10))
	if err := h.node.nc.PublishMsg(m); err != nil {
		h.node.log.Debug("cluster: announce a batch", "err", err)
	}
	// The connection has no echo: this node's consumer gets it directly.
	h.offerFast(m)
}

// announce wakes the readers after the stream acknowledged a batch.
// Its headers tell which stream messages hold which batch (seqHeader,
// lastHeader; none when firstSeq is 0), so a reader that delivered the
// batch from its announcement skips them (consumer.skipKnown).
func (h *Handoff) announce(firstSeq, lastSeq, last uint64) {
	m := nats.NewMsg(h.wakeSubject)
	if firstSeq != 0 {
		m.Header.Set(seqHeader, fmt.Sprintf("%d %d", firstSeq, lastSeq))
		m.Header.Set(lastHeader, strconv.FormatUint(last, 10))
		h.addHint(firstSeq, lastSeq, last)
	}
	h.signal()
	if err := h.node.nc.PublishMsg(m); err != nil {
		h.node.log.Debug("cluster: announce changes", "err", err)
	}
}

// seqHeader and lastHeader name the headers of a stream announcement: the
// stream sequences of a batch's messages ("first last") and the batch's
// last position.
const (
	seqHeader  = "Rt-Seq"
	lastHeader = "Rt-Last"
)

// hint says that the stream messages from a hint's key to lastSeq hold one
// batch ending at position last.
type hint struct{ lastSeq, last uint64 }

// maxHints bounds the hints kept for this node's reader.
const maxHints = 1024

// addHint records a batch's stream messages, from the holder's
// announcement (or this node's own publishing).
func (h *Handoff) addHint(firstSeq, lastSeq, last uint64) {
	h.hintMu.Lock()
	defer h.hintMu.Unlock()
	if len(h.hints) >= maxHints {
		// The reader is not using them (it is behind and reads the
		// stream): start over.
		clear(h.hints)
	}
	h.hints[firstSeq] = hint{lastSeq: lastSeq, last: last}
}

// takeHintFrom removes and returns the hint of the batch whose first
// message is seq (and, once many have gathered, the hints of messages
// before seq).
func (h *Handoff) takeHintFrom(seq uint64) (hint, bool) {
	h.hintMu.Lock()
	defer h.hintMu.Unlock()
	if len(h.hints) > 64 {
		// Hints of messages the reader read are left behind when it reads
		// rather than skips: drop them now and then, not on every call.
		for k := range h.hints {
			if k < seq {
				delete(h.hints, k)
			}
		}
	}
	v, ok := h.hints[seq]
	if ok {
		delete(h.hints, seq)
	}
	return v, ok
}

// onAnnouncement records the hint an announcement carries and wakes the
// reader.
func (h *Handoff) onAnnouncement(m *nats.Msg) {
	var first, lastSeq uint64
	if _, err := fmt.Sscanf(m.Header.Get(seqHeader), "%d %d", &first, &lastSeq); err == nil && first != 0 && lastSeq >= first {
		if last, err := strconv.ParseUint(m.Header.Get(lastHeader), 10, 64); err == nil {
			h.addHint(first, lastSeq, last)
		}
	}
	h.signal()
}

// coveredHeader names the header of a marker announced on core NATS: the
// holder has confirmed this position, and no change lies between the
// marker's Rt-Prev and it (a keepalive's position past the last change).
// A reader that delivered up to Rt-Prev has then delivered up to it too, so
// the next holder's first batch, which starts there, continues what it
// delivered (docs/cluster.md "Change hand-off").
const coveredHeader = "Rt-Covered"

// sendCovered announces that no change lies after prev up to pos.
func (h *Handoff) sendCovered(prev, pos uint64) {
	m := nats.NewMsg(h.fastSubject)
	m.Header.Set(fastHeader, strconv.FormatUint(prev, 10))
	m.Header.Set(coveredHeader, strconv.FormatUint(pos, 10))
	if err := h.node.nc.PublishMsg(m); err != nil {
		h.node.log.Debug("cluster: announce a confirmed position", "err", err)
	}
	h.offerFast(m)
}

// fastQueue bounds the announced batches waiting for this node's consumer;
// beyond it they are dropped (the consumer reads them from the stream).
const fastQueue = 256

// offerFast hands an announced batch to this node's consumer, or drops it
// when the consumer is behind.
func (h *Handoff) offerFast(m *nats.Msg) {
	select {
	case h.fast <- m:
	default:
	}
}

// takeFast delivers a batch announced on core NATS when it continues what
// this node delivered: the holder published every change after its prev
// header up to the batch, and prev is at or before this node's newest
// position, so the batch holds every change after that position up to its
// end (earlier ones are dropped as delivered). A batch that does not (this
// node is behind) is left to the stream, where it is read later.
func (c *consumer) takeFast(ctx context.Context, m *nats.Msg) {
	if v := m.Header.Get(coveredHeader); v != "" {
		c.takeCovered(ctx, m, v)
		return
	}
	bm, err := parseBatchHeader(m.Header.Get(batchHeader))
	if err != nil || bm.of != 1 {
		return
	}
	prev, err := strconv.ParseUint(m.Header.Get(fastHeader), 10, 64)
	floor := max(c.hwm, c.pendingLast())
	if err != nil || prev == 0 || prev > floor || bm.last <= floor {
		return
	}
	changes, err := c.cfg.Decoder.Decode(m.Data)
	if err != nil {
		c.h.node.drop(dropBadMessage, err, "subject", m.Subject)
		return
	}
	for _, ch := range changes {
		if ch.Position > floor {
			c.pending = append(c.pending, ch)
		}
	}
	c.flush(ctx)
}

// takeCovered moves the high-water mark to a marker's position when the
// marker continues what this node delivered (coveredHeader).
func (c *consumer) takeCovered(ctx context.Context, m *nats.Msg, v string) {
	pos, err1 := strconv.ParseUint(v, 10, 64)
	prev, err2 := strconv.ParseUint(m.Header.Get(fastHeader), 10, 64)
	floor := max(c.hwm, c.pendingLast())
	if err1 != nil || err2 != nil || prev == 0 || prev > floor || pos <= floor {
		return
	}
	c.flush(ctx)
	c.hwm = pos
	c.h.lastSeen.Store(pos)
}

// skipKnown moves c.next past the stream messages of announced batches
// (Handoff.announce) this node has delivered already: their changes are at
// or before its high-water mark, so reading them would drop them all. It
// reports whether c.next is then past every announced message.
func (c *consumer) skipKnown() bool {
	floor := max(c.hwm, c.pendingLast())
	skipped := false
	for {
		hn, ok := c.h.takeHintFrom(c.next)
		if !ok {
			return skipped
		}
		if hn.last > floor {
			// Not delivered yet: read it. The hint is gone; reading
			// needs none.
			return false
		}
		c.next = hn.lastSeq + 1
		skipped = true
		if !c.caughtUp && c.next > c.target {
			c.markCaughtUp()
		}
	}
}
