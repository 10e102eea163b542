package cluster

import (
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/openrealtime/realtime/channels"
)

// sysEnc frames a system message as its payload; other frames as enc does.
type sysEnc struct{ enc }

func (sysEnc) EncodeSystem(_ string, payload []byte) channels.Frame {
	return channels.Frame{Data: payload}
}

// startNATS runs a NATS server on port (0: a random one) until the test
// ends or it is shut down.
func startNATS(t *testing.T, port int) *server.Server {
	t.Helper()
	if port == 0 {
		port = server.RANDOM_PORT
	}
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	return srv
}

// awaitSystem returns the status and message of the next system message r
// records, skipping other frames.
func awaitSystem(t *testing.T, r *recorder, timeout time.Duration) (status, message string) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case f := <-r.got:
			var m struct{ Extension, Status, Message, Channel string }
			if json.Unmarshal([]byte(f), &m) == nil && m.Extension == "system" {
				if m.Channel != "lobby" {
					t.Fatalf("system message for channel %q, want lobby", m.Channel)
				}
				return m.Status, m.Message
			}
		case <-deadline:
			t.Fatalf("no system message within %s", timeout)
		}
	}
}

// A node whose NATS connection is down (external mode) tells every
// subscriber that it is cut off, and that it is back once it hears the
// other node again (docs/cluster.md "Failure behaviour implemented so
// far"); the subscription stays.
func TestIsolationToldToSubscribers(t *testing.T) {
	srv := startNATS(t, 0)
	port := srv.Addr().(*net.TCPAddr).Port
	nodes := externalNodes(t, srv.ClientURL(), "x1", "x2")
	r := newRecorder()
	s := &channels.Subscription{ID: nodes[0].hub.NextID(), Topic: "realtime:lobby", Name: "lobby", Writer: r, Encoder: sysEnc{}}
	nodes[0].hub.Subscribe(s)
	_, r1 := nodes[1].subscribe("realtime:lobby", false)
	awaitRoute(t, nodes[0], "realtime:lobby", r1)
	for len(r.got) > 0 {
		<-r.got // the probes
	}
	if nodes[0].node.Isolated() {
		t.Fatal("isolated while connected")
	}

	srv.Shutdown()
	srv.WaitForShutdown()
	if st, msg := awaitSystem(t, r, 30*time.Second); st != "error" || msg != channels.IsolatedMessage {
		t.Fatalf("got %s %q, want the cut-off error", st, msg)
	}
	if !nodes[0].node.Isolated() || !nodes[0].node.Stats().Isolated {
		t.Fatal("not isolated after the error")
	}

	startNATS(t, port)
	if st, msg := awaitSystem(t, r, 30*time.Second); st != "ok" || msg != channels.RejoinedMessage {
		t.Fatalf("got %s %q, want the back-in-contact ok", st, msg)
	}
	if nodes[0].node.Isolated() {
		t.Fatal("still isolated after the ok")
	}
	// The channel stays: broadcasts reach it again.
	awaitRoute(t, nodes[1], "realtime:lobby", r)
}
