package main

import (
	"encoding/json"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openrealtime/realtime/realtime/phoenix"
)

// presenceClient is a client that joined a topic with a presence key and
// keeps its view of the channel's presence from presence_state and diffs.
type presenceClient struct {
	*wsClient
	topic string
	view  map[string]int // key → metas
}

// joinPresence dials s, joins topic with presence key and tracks {"k":key}.
func joinPresence(t *testing.T, s *service, apikey, topic, key string) *presenceClient {
	t.Helper()
	c := s.dial(t, apikey)
	p, _ := json.Marshal(map[string]any{"access_token": apikey, "config": map[string]any{"presence": map[string]any{"key": key, "enabled": true}}})
	c.ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, "1", "1", topic, "phx_join", p))
	if m := c.next("phx_reply", 10*time.Second); !strings.Contains(string(m.Payload), `"status":"ok"`) {
		t.Fatalf("join %s: %s", topic, m.Payload)
	}
	pc := &presenceClient{wsClient: c, topic: topic, view: map[string]int{}}
	pc.apply(c.next("presence_state", 10*time.Second))
	track := `{"type":"presence","event":"track","payload":{"k":"` + key + `"}}`
	c.ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, "1", "2", topic, "presence", []byte(track)))
	return pc
}

// apply folds a presence_state or presence_diff frame into the view.
func (pc *presenceClient) apply(m phoenix.Message) {
	type metas map[string]struct {
		Metas []json.RawMessage `json:"metas"`
	}
	switch m.Event {
	case "presence_state":
		var st metas
		json.Unmarshal(m.Payload, &st)
		pc.view = map[string]int{}
		for k, v := range st {
			pc.view[k] = len(v.Metas)
		}
	case "presence_diff":
		var d struct{ Joins, Leaves metas }
		json.Unmarshal(m.Payload, &d)
		for k, v := range d.Joins {
			pc.view[k] += len(v.Metas)
		}
		for k, v := range d.Leaves {
			if pc.view[k] -= len(v.Metas); pc.view[k] <= 0 {
				delete(pc.view, k)
			}
		}
	}
}

// keys is the view's keys, sorted and comma-joined; a key with more than
// one meta is listed that many times.
func (pc *presenceClient) keys() string {
	var ks []string
	for k, n := range pc.view {
		for range n {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// await applies presence frames until the view lists want.
func (pc *presenceClient) await(want string) {
	pc.t.Helper()
	deadline := time.After(15 * time.Second)
	for pc.keys() != want {
		select {
		case m, ok := <-pc.frames:
			if !ok {
				pc.t.Fatalf("connection closed; view %q, want %q", pc.keys(), want)
			}
			pc.apply(m)
		case <-deadline:
			pc.t.Fatalf("presence view %q, want %q", pc.keys(), want)
		}
	}
}

// Presence is cluster-wide: each client's view (presence_state plus diffs)
// lists the members of every node; a node stopped with SIGTERM sends its
// members' leaves, a killed node's members leave once its heartbeats stop
// (docs/cluster.md "Presence").
func TestClusterPresence(t *testing.T) {
	e := newEnv(t)
	nodes := e.startCluster(t, 3)
	const topic = "realtime:lobby"
	a := joinPresence(t, nodes[0].service, e.keys.Anon, topic, "a")
	a.await("a")
	b := joinPresence(t, nodes[1].service, e.keys.Anon, topic, "b")
	b.await("a,b")
	a.await("a,b")
	c := joinPresence(t, nodes[2].service, e.keys.Anon, topic, "c")
	for _, pc := range []*presenceClient{a, b, c} {
		pc.await("a,b,c")
	}
	// A late joiner on a node that already follows the topic gets every
	// node's members in its presence_state.
	late := joinPresence(t, nodes[1].service, e.keys.Anon, topic, "late")
	late.await("a,b,c,late")
	a.await("a,b,c,late")

	// Clean stop of node 3: c leaves everywhere.
	nodes[2].cmd.Process.Signal(syscall.SIGTERM)
	nodes[2].cmd.Wait()
	a.await("a,b,late")
	b.await("a,b,late")

	// Crash of node 2: b and late leave once its heartbeats stop.
	nodes[1].kill9()
	a.await("a")
}
