package realtime

import (
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/channels"
)

// Shutdown sends every client a service-restart (1012) close frame and leaves no
// goroutine of the server behind.
func TestShutdownClosesCleanlyWithoutLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	v, _ := auth.NewVerifier(auth.Config{Secret: testSecret})
	srv := New(Config{Verifier: v, Hub: channels.NewHub(channels.HubConfig{})})
	srv.SetReady(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	key := token(t, map[string]any{"role": "anon"})
	var clients []*websocket.Conn
	for i := 0; i < 5; i++ {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+ln.Addr().String()+"/socket/websocket?vsn=2.0.0&apikey="+key, nil)
		if err != nil {
			t.Fatal(err)
		}
		ws.WriteMessage(websocket.TextMessage, []byte(`["1","1","realtime:s","phx_join",{"config":{"presence":{"enabled":true}}}]`))
		clients = append(clients, ws)
	}
	for _, ws := range clients {
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		ws.ReadMessage() // join reply
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go hs.Shutdown(ctx)
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i, ws := range clients {
		var code int
		for {
			ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, err := ws.ReadMessage()
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				code = ce.Code
				break
			}
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
		}
		if code != websocket.CloseServiceRestart {
			t.Fatalf("client %d close code %d, want 1012", i, code)
		}
		ws.Close()
	}
	// Goroutines wind down asynchronously after the sockets close.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<16)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%d goroutines before, %d after shutdown:\n%s", before, n, firstStacks(string(buf), 40))
	}
}

func firstStacks(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[:lines]
	}
	return strings.Join(parts, "\n")
}
