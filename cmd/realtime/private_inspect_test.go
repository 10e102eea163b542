package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openrealtime/realtime/channels"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// inspectPermissions returns the permissions the admin API shows for the
// subscribers of the private channel name, in subscriber id order.
func inspectPermissions(t *testing.T, addr, token, name string) []*channels.Permissions {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/admin/api/channels/"+name, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET channel %s: %d %s", name, res.StatusCode, body)
	}
	var d struct {
		Subscribers []channels.SubscriberStats `json:"subscribers"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	var out []*channels.Permissions
	for _, s := range d.Subscribers {
		out = append(out, s.Permissions)
	}
	return out
}

// broadcastV1 sends a broadcast on the joined private channel.
func (c *v1Client) broadcastV1(name string) {
	c.ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V1, "1", "2", "realtime:"+name, "broadcast",
		[]byte(`{"type":"broadcast","event":"e","payload":{"x":1}}`)))
}

// waitPerm polls the admin API until cond holds for the only subscriber.
func waitPerm(t *testing.T, addr, token, name string, cond func(p *channels.Permissions) bool) *channels.Permissions {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ps := inspectPermissions(t, addr, token, name)
		if len(ps) == 1 && ps[0] != nil && cond(ps[0]) {
			return ps[0]
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(ps)
			t.Fatalf("%s: permissions never matched: %s", name, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The inspector shows each private subscriber's permissions: granted,
// denied or not probed yet, with why for each one not granted, and the
// error of a failed probe; public subscribers have none (docs/protocol.md
// §9.2, docs/admin.md).
func TestInspectorShowsPrivatePermissions(t *testing.T) {
	e := newEnv(t)
	const admin = "inspect-admin-token"
	s := e.startService(t, "", "--admin-token", admin)
	e.exec(t, `CREATE POLICY "insp read" ON realtime.messages FOR SELECT TO authenticated USING (realtime.topic() LIKE 'insp-%')`)
	e.exec(t, `CREATE POLICY "insp write" ON realtime.messages FOR INSERT TO authenticated WITH CHECK (realtime.topic() = 'insp-ok' OR 1 / (length(realtime.topic()) - 9) = 5)`)

	// insp-ro: read granted, write not probed until the first broadcast, then denied.
	ro := dialV1(t, s.addr, e.keys.User)
	ro.joinPrivate(t, "insp-ro", e.keys.User, "")
	p := waitPerm(t, s.addr, admin, "insp-ro", func(p *channels.Permissions) bool { return true })
	if p.BroadcastRead != "granted" || p.BroadcastWrite != "unknown" || p.PresenceRead != "unknown" || p.PresenceWrite != "unknown" || p.Failure != "" {
		t.Fatalf("after join: %+v", p)
	}
	if !strings.Contains(p.Why["broadcast_write"], "not probed yet") || p.Why["broadcast_read"] != "" {
		t.Fatalf("why after join: %v", p.Why)
	}
	ro.broadcastV1("insp-ro")
	p = waitPerm(t, s.addr, admin, "insp-ro", func(p *channels.Permissions) bool { return p.BroadcastWrite != "unknown" })
	if p.BroadcastWrite != "denied" || p.PresenceWrite != "denied" || p.Failure != "" {
		t.Fatalf("after a broadcast: %+v", p)
	}
	if w := p.Why["broadcast_write"]; !strings.Contains(w, "no INSERT policy") || !strings.Contains(w, "authenticated") || !strings.Contains(w, "insp-ro") {
		t.Fatalf("why broadcast_write: %q", w)
	}

	// insp-ok: write granted.
	ok := dialV1(t, s.addr, e.keys.User)
	ok.joinPrivate(t, "insp-ok", e.keys.User, "")
	ok.broadcastV1("insp-ok")
	p = waitPerm(t, s.addr, admin, "insp-ok", func(p *channels.Permissions) bool { return p.BroadcastWrite != "unknown" })
	if p.BroadcastWrite != "granted" || p.Why["broadcast_write"] != "" {
		t.Fatalf("insp-ok: %+v", p)
	}

	// insp-fail (9 characters): the write policy divides by zero, the probe fails.
	fail := dialV1(t, s.addr, e.keys.User)
	fail.joinPrivate(t, "insp-fail", e.keys.User, "")
	fail.broadcastV1("insp-fail")
	p = waitPerm(t, s.addr, admin, "insp-fail", func(p *channels.Permissions) bool { return p.Failure != "" })
	if !strings.Contains(p.Failure, "division by zero") || !strings.Contains(p.Why["broadcast_write"], "the write probe failed") {
		t.Fatalf("insp-fail: %+v", p)
	}

	// A public channel shows no permissions.
	pub := dialV1(t, s.addr, e.keys.User)
	pub.ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V1, "1", "1", "realtime:insp-public", "phx_join", []byte(`{"config":{}}`)))
	pub.next(t, "phx_reply")
	if ps := inspectPermissions(t, s.addr, admin, "insp-public"); len(ps) != 1 || ps[0] != nil {
		t.Fatalf("public channel permissions: %v", ps)
	}
}
