package admin

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openrealtime/realtime/channels"
)

// watcher is one live-tail stream.
type watcher struct {
	topics []string // wire topics to match; empty matches every topic
	ch     chan channels.TapEvent
	lost   atomic.Int64 // events dropped because ch was full
}

func (w *watcher) matches(topic string) bool {
	if len(w.topics) == 0 {
		return true
	}
	for _, t := range w.topics {
		if t == topic {
			return true
		}
	}
	return false
}

// tail fans tap events out to live-tail streams. It keeps its publish
// installed as the hub's tap exactly while it has a watcher, so that
// fan-out builds no tap events when nobody watches. publish reads the
// watcher list without a lock; add and remove replace it (copy on write).
type tail struct {
	hub      *channels.Hub              // set once by New
	mu       sync.Mutex                 // serializes add and remove, and with them hub.SetTap
	watchers atomic.Pointer[[]*watcher] // never mutated once stored
}

// publish offers ev to every matching watcher without blocking.
func (t *tail) publish(ev channels.TapEvent) {
	p := t.watchers.Load()
	if p == nil {
		return
	}
	for _, w := range *p {
		if !w.matches(ev.Topic) {
			continue
		}
		select {
		case w.ch <- ev:
		default:
			w.lost.Add(1)
		}
	}
}

func (t *tail) add(w *watcher) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var next []*watcher
	if p := t.watchers.Load(); p != nil {
		next = append(next, *p...)
	}
	next = append(next, w)
	t.watchers.Store(&next)
	if len(next) == 1 {
		t.hub.SetTap(t.publish)
	}
}

func (t *tail) remove(w *watcher) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.watchers.Load()
	if p == nil {
		return
	}
	next := make([]*watcher, 0, len(*p))
	for _, o := range *p {
		if o != w {
			next = append(next, o)
		}
	}
	t.watchers.Store(&next)
	if len(next) == 0 && len(*p) > 0 {
		t.hub.SetTap(nil)
	}
}

// tailTopics turns the ?channel= value into the wire topics it matches:
// "room1" matches "realtime:room1" (and a bare "room1", as SSE streams
// without a channel are named "sse:<id>").
func tailTopics(channel string) []string {
	channel = strings.TrimSpace(channel)
	switch {
	case channel == "":
		return nil
	case strings.HasPrefix(channel, "realtime:"):
		return []string{channel}
	}
	return []string{"realtime:" + channel, channel}
}

// tailWriteTimeout bounds one write of a live-tail stream.
const tailWriteTimeout = 10 * time.Second

// handleEvents streams fanned-out messages as Server-Sent Events: an
// initial "ready" event, then one "fanout" event per message (a
// channels.TapEvent as JSON), "lost" events when the stream fell behind,
// and comment heartbeats. ?channel=<name> restricts it to one channel.
func (i *Inspector) handleEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	channel := r.URL.Query().Get("channel")
	wt := &watcher{topics: tailTopics(channel), ch: make(chan channels.TapEvent, i.cfg.TailBuffer)}
	i.tail.add(wt)
	defer i.tail.remove(wt)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	ready, _ := json.Marshal(map[string]any{"channel": channel, "time": time.Now().UTC()})
	buf := appendEvent(nil, "ready", ready)
	heartbeat := time.NewTicker(i.cfg.TailHeartbeat)
	defer heartbeat.Stop()
	var reported int64
	for {
		if len(buf) > 0 {
			rc.SetWriteDeadline(time.Now().Add(tailWriteTimeout))
			if _, err := w.Write(buf); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			buf = buf[:0]
		}
		select {
		case <-r.Context().Done():
			return
		case <-i.done:
			return
		case <-heartbeat.C:
			buf = append(buf, ": ping\n\n"...)
		case ev := <-wt.ch:
			buf = appendTapEvent(buf, ev)
			// Batch whatever else is already waiting into one write.
			for n := 0; n < 64; n++ {
				select {
				case ev = <-wt.ch:
					buf = appendTapEvent(buf, ev)
					continue
				default:
				}
				break
			}
		}
		if lost := wt.lost.Load(); lost != reported {
			buf = appendEvent(buf, "lost", []byte(`{"lost":`+strconv.FormatInt(lost, 10)+`}`))
			reported = lost
		}
	}
}

func appendTapEvent(buf []byte, ev channels.TapEvent) []byte {
	data, err := json.Marshal(ev)
	if err != nil {
		return buf
	}
	return appendEvent(buf, "fanout", data)
}

// appendEvent appends one SSE event; data is single-line JSON.
func appendEvent(buf []byte, event string, data []byte) []byte {
	buf = append(buf, "event: "...)
	buf = append(buf, event...)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, data...)
	return append(buf, "\n\n"...)
}
