package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestReadersAgree runs every WebSocket reader of the platform against a server that sends
// a plain reply, a reply in 256-byte fragments, a 300 KB reply (more than
// one read), a ping, and then closes.
func TestReadersAgree(t *testing.T) {
	readers := []string{readerGo}
	if defaultReader != readerGo {
		readers = append(readers, readerEpoll, readerURing)
	}
	for _, reader := range readers {
		t.Run(reader, func(t *testing.T) { testReader(t, reader) })
	}
}

// errPonged ends the test server's read loop once the pong has come.
var errPonged = errors.New("ponged")

func testReader(t *testing.T, reader string) {
	big := `{"status":"ok","response":{"pad":"` + strings.Repeat("p", 300<<10) + `"}}`
	refused := `{"status":"error","response":{"reason":"` + strings.Repeat("r", 2000) + `"}}`
	ponged := make(chan struct{})
	up := websocket.Upgrader{WriteBufferSize: 256}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		// Like the service, say nothing before the client does.
		if _, _, err := ws.ReadMessage(); err != nil {
			return
		}
		ws.SetPongHandler(func(string) error { close(ponged); return errPonged })
		for _, m := range []string{
			`[null,"1","realtime:a","phx_reply",{"status":"ok","response":{}}]`,
			`[null,"2","realtime:b","phx_reply",` + refused + `]`,
			`[null,"3","realtime:c","phx_reply",` + big + `]`,
		} {
			if err := ws.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
				return
			}
		}
		ws.WriteMessage(websocket.PingMessage, []byte("p"))
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return // errPonged, or the test ended
			}
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	cfg := &config{URLs: []*url.URL{u}, Reader: reader}
	chans := []*wsChannel{
		newWSChannel("realtime:a", "1", nil, false),
		newWSChannel("realtime:b", "2", nil, false),
		newWSChannel("realtime:c", "3", nil, false),
	}
	rec := &recorder{}
	var strays atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := dialWS(ctx, cfg, 0, "key", 0, chans, rec, &strays)
	if err != nil {
		t.Fatal(err)
	}
	if (c.ep != nil) != (reader != readerGo) {
		t.Fatalf("reader %s: epoll state %v", reader, c.ep != nil)
	}
	if reader == readerURing && !c.ep.batched() {
		t.Fatal("reader uring: the poller has no io_uring")
	}
	if err := c.heartbeat(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chans {
		select {
		case <-ch.replied:
		case <-ctx.Done():
			t.Fatalf("no reply on %s", ch.topic)
		}
	}
	if chans[0].replyErr != "" || chans[2].replyErr != "" {
		t.Errorf("replies: %q, %.40q", chans[0].replyErr, chans[2].replyErr)
	}
	if !strings.HasPrefix(chans[1].replyErr, "join refused: ") || !strings.Contains(chans[1].replyErr, strings.Repeat("r", 2000)) {
		t.Errorf("fragmented reply: %.60q", chans[1].replyErr)
	}
	select {
	case <-ponged:
	case <-ctx.Done():
		t.Fatal("no pong")
	}
	select {
	case <-c.done: // the server closed: the reader ended on its own
	case <-ctx.Done():
		t.Fatal("reader did not end")
	}
	if rec.closes.Load() != 1 || rec.unparsed.Load() != 0 {
		t.Errorf("closes %d, unparsed %d", rec.closes.Load(), rec.unparsed.Load())
	}
	c.close()
}
