package channels

import (
	"runtime"
	"strconv"
	"sync"
	"time"
)

// parallelFrames is the number of frames in a batch from which the live
// fan-out is split over several goroutines. A frame costs the fan-out a
// few microseconds (a send in a batched submission), so below this one
// goroutine delivers the batch in a few milliseconds, and splitting it
// would buy little time for more CPU: on 2 cores a change to 1 000
// subscribers cost 0.52–0.66 cores at 100 changes/s on one goroutine
// against 0.62–0.73 on two, with a lower p99 in each of 3 alternated pairs
// (docs/benchmarks.md, "Latency without RLS").
const parallelFrames = 2048

// directChanges is the largest batch whose frames connections may write
// at once. The source merges the transactions that arrive while a batch
// is fanned out into the next batch, so small batches mean the feed keeps
// up, and one syscall per frame on the fan-out's goroutine buys latency;
// a larger batch means a backlog, where handing the frames to the
// connections' writers lets them run beside the next batch's RLS checks
// and matching, and batch frames (docs/protocol.md §1).
const directChanges = 4

// maxFanWorkers bounds the goroutines of one batch's fan-out.
const maxFanWorkers = 4

// fanPart is one goroutine's share of a batch's fan-out: the subscribers
// whose ID falls in its slot, with its own envelope cache and counters, so
// the parts share nothing while they run.
type fanPart struct {
	b         *pgBatch
	shared    *sharedFrames      // the parts' common envelopes; nil for a single part
	slot, of  uint64             // this part delivers to subscribers with ID%of == slot
	direct    bool               // connections may write frames at once (see directChanges)
	frames    map[frameKey]Frame // envelopes of the change being delivered
	framesFor int                // batch index frames holds
	queued    int                // frames queued
	touched   int64              // activity time stamped on topics, unix ns; 0 until the first frame
	taps      map[tapKey]int     // while a tap is installed
}

// deliver frames each delivery's data for the members of its class (or for
// only) and queues the frames in batch order (replays collect them in
// replayed). Envelopes are built once per (topic, encoder, ids) of a change.
// A large live batch is split by subscriber over up to maxFanWorkers
// goroutines; each subscriber is served by one of them, so its frames stay
// in batch order.
func (b *pgBatch) deliver() {
	if b.only != nil {
		b.deliverReplay()
		return
	}
	w := b.fanWorkers()
	direct := len(b.changes) <= directChanges
	if w == 1 {
		part := fanPart{b: b, of: 1, frames: b.frames, framesFor: -1, direct: direct}
		part.run()
		b.merge(&part)
		return
	}
	parts := make([]fanPart, w)
	for len(b.partFrames) < w-1 {
		b.partFrames = append(b.partFrames, make(map[frameKey]Frame))
	}
	var wg sync.WaitGroup
	for k := range parts {
		frames := b.frames
		if k > 0 {
			frames = b.partFrames[k-1]
		}
		parts[k] = fanPart{b: b, shared: &b.shared, slot: uint64(k), of: uint64(w), frames: frames, framesFor: -1, direct: direct}
		if k > 0 {
			wg.Go(parts[k].run)
		}
	}
	parts[0].run()
	wg.Wait()
	for k := range parts {
		b.merge(&parts[k])
	}
}

// fanWorkers decides how many goroutines deliver the batch.
func (b *pgBatch) fanWorkers() int {
	w := min(runtime.GOMAXPROCS(0), maxFanWorkers)
	if w < 2 {
		return 1
	}
	n := 0
	for i := range b.deliveries {
		if b.deliveries[i].data != nil {
			n += len(*b.deliveries[i].class.members.Load())
			if n >= parallelFrames {
				return w
			}
		}
	}
	return 1
}

// deliverReplay frames the batch for the one subscriber of a replay.
func (b *pgBatch) deliverReplay() {
	part := fanPart{b: b, of: 1, frames: b.frames, framesFor: -1}
	for i := range b.deliveries {
		d := &b.deliveries[i]
		if d.data == nil {
			continue
		}
		b.replayed = append(b.replayed, part.frame(b.only, d, idsString(d.ids)))
	}
}

// merge adds a finished part's counters to the batch.
func (b *pgBatch) merge(part *fanPart) {
	b.stats.Frames += part.queued
	for k, n := range part.taps {
		if b.taps == nil {
			b.taps = make(map[tapKey]int)
		}
		b.taps[k] += n
	}
}

// run queues this part's frames in batch order.
func (p *fanPart) run() {
	b := p.b
	var wb WriteBatch // the direct writes of this part, made together
	for i := range b.deliveries {
		d := &b.deliveries[i]
		if d.data == nil {
			continue
		}
		idsKey := ""
		for _, s := range *d.class.members.Load() {
			if s.ID%p.of != p.slot {
				continue
			}
			if idsKey == "" {
				idsKey = idsString(d.ids)
			}
			if deliverTo(s, p.frame(s, d, idsKey), p.direct, &wb) {
				p.count(s, d.change)
			}
		}
	}
	if wb != nil {
		wb.Flush()
	}
}

// frame returns d's frame for s from p.frames, building it on a miss, or
// taking it from the other parts' when the batch is split: subscribers of
// one topic fall in every part, and each envelope is built once.
func (p *fanPart) frame(s *Subscription, d *delivery, idsKey string) Frame {
	if p.framesFor != d.change {
		clear(p.frames)
		p.framesFor = d.change
	}
	fk := frameKey{s.Topic, s.Encoder, &d.data[0], idsKey}
	fr, ok := p.frames[fk]
	if !ok {
		if p.shared != nil {
			fr = p.shared.get(fk, func() Frame { return p.encode(s, d) })
		} else {
			fr = p.encode(s, d)
		}
		p.frames[fk] = fr
	}
	return fr
}

// encode builds d's envelope for s.
func (p *fanPart) encode(s *Subscription, d *delivery) Frame {
	cur := p.b.cursors[d.change]
	fr := s.Encoder.EncodePostgresChange(s.Topic, d.ids, d.data, cur)
	fr.Cursor = cur
	return fr
}

// sharedFrames are the envelopes the parts of a split fan-out have built,
// for the whole batch: a key names its change through the data pointer.
type sharedFrames struct {
	mu sync.Mutex // guards m; held while an envelope is built, so each is built once
	m  map[frameKey]Frame
}

// get returns the envelope for fk, building it with build on a miss.
func (sf *sharedFrames) get(fk frameKey, build func() Frame) Frame {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	fr, ok := sf.m[fk]
	if !ok {
		if sf.m == nil {
			sf.m = make(map[frameKey]Frame)
		}
		fr = build()
		sf.m[fk] = fr
	}
	return fr
}

// count counts a frame of change ci queued to s, on the part and on s's
// topic, and notes it for the tap while one is installed.
func (p *fanPart) count(s *Subscription, ci int) {
	p.queued++
	t := s.topic.Load()
	if t == nil {
		// Bindings activated before Hub.Subscribe (SSE) can see a change
		// first; count it on the topic if one exists.
		t = p.b.p.hub.lookup(TopicKey(s.Topic, s.Private))
	}
	if t != nil {
		t.msgsOut.Add(1)
		if p.touched == 0 {
			p.touched = time.Now().UnixNano()
		}
		if t.lastActive.Load() != p.touched {
			t.lastActive.Store(p.touched)
		}
	}
	if p.b.tapping {
		if p.taps == nil {
			p.taps = make(map[tapKey]int)
		}
		p.taps[tapKey{s.Topic, ci}]++
	}
}

// emitTaps reports the batch to the tap, one event per (topic, change);
// b.taps is nil, and nothing is built, while no tap is installed.
func (b *pgBatch) emitTaps() {
	for k, n := range b.taps {
		ch := &b.changes[k.change]
		b.p.hub.emitTap(k.topic, "postgres_changes", ch.Kind.String()+" "+ch.Rel.Schema+"."+ch.Rel.Table, rowJSON(ch), n)
	}
}

// idsString is a map key for a list of binding ids.
func idsString(ids []int64) string {
	if len(ids) == 1 {
		return strconv.FormatInt(ids[0], 10)
	}
	buf := make([]byte, 0, 12*len(ids))
	for _, id := range ids {
		buf = strconv.AppendInt(buf, id, 10)
		buf = append(buf, ',')
	}
	return string(buf)
}
