package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openrealtime/realtime/internal/demo"
)

// init lowers the file descriptor limit of a service child started with
// REALTIME_TEST_NOFILE (see TestMain): the Go runtime has raised the soft
// limit to the hard one already, so both are set.
func init() {
	if v := os.Getenv("REALTIME_TEST_NOFILE"); v != "" && os.Getenv("REALTIME_TEST_EXEC") != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			panic(err)
		}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
			panic(err)
		}
	}
}

// With 256 file descriptors the service derives a connection cap that
// leaves room for everything else: past it, WebSocket clients are refused
// with 429 "Too many connected users" (never a hang or a reset), a flood
// of further attempts within the listener's headroom is answered the same way, /healthz keeps answering,
// and the process never hits EMFILE.
func TestConnectionCapKeepsTheServiceAnsweringWithFewDescriptors(t *testing.T) {
	keys, err := demo.MakeKeys(demo.NewSecret(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("REALTIME_TEST_NOFILE", "256")
	svc := launch(t, "", "--jwt-secret", keys.Secret, "--log-level", "info")
	url := "ws://" + svc.addr + "/realtime/v1/websocket?vsn=2.0.0&apikey=" + keys.Anon
	var held []*websocket.Conn
	defer func() {
		for _, ws := range held {
			ws.Close()
		}
	}()
	refused := 0
	for i := 0; i < 300 && refused == 0; i++ {
		ws, resp, err := websocket.DefaultDialer.Dial(url, nil)
		if err == nil {
			held = append(held, ws)
			continue
		}
		if resp == nil {
			t.Fatalf("connection %d failed without an answer: %v\n%s", i, err, svc.output())
		}
		body, _ := io.ReadAll(resp.Body)
		var e struct{ Error string }
		json.Unmarshal(body, &e)
		if resp.StatusCode != http.StatusTooManyRequests || e.Error != "Too many connected users" {
			t.Fatalf("connection %d: %d %s", i, resp.StatusCode, body)
		}
		refused++
	}
	if refused == 0 || len(held) >= 256 {
		t.Fatalf("%d connections held with 256 descriptors, none refused", len(held))
	}
	// Waves of further attempts, each within the listener's headroom
	// (past it sockets are shed at accept: TestGuardListener): every one
	// gets its 429.
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for i := 0; i < 200; i++ {
		if i%50 == 0 {
			wg.Wait()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
			ws, resp, err := d.Dial(url, nil)
			switch {
			case err == nil:
				ws.Close()
				errs <- "accepted past the cap"
			case resp == nil:
				errs <- err.Error()
			case resp.StatusCode != http.StatusTooManyRequests:
				errs <- resp.Status
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("flood attempt: %s", e)
	}
	resp, err := http.Get("http://" + svc.addr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %d", resp.StatusCode)
	}
	if strings.Contains(svc.output(), "too many open files") {
		t.Fatalf("the service ran out of descriptors:\n%s", svc.output())
	}
	// The held connections still work.
	held[0].WriteMessage(websocket.TextMessage, []byte(`[null,"1","phoenix","heartbeat",{}]`))
	held[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, data, err := held[0].ReadMessage(); err != nil || !strings.Contains(string(data), `"ok"`) {
		t.Fatalf("heartbeat on a held connection: %s %v", data, err)
	}
}
