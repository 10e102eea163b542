package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openrealtime/realtime/auth"
	"github.com/openrealtime/realtime/realtime/phoenix"
)

// attackOrder lists the soak's attacks in report order.
var attackOrder = []string{
	"metrics-scrape", "bad-tokens", "socket-flood", "sse-resume-flood", "huge-topics",
	"like-bomb", "big-rows", "big-presence", "presence-joiners", "join-storm",
}

// attackStats counts what one attack tried and what the service did.
// "accepted" is what got through: for most attacks a non-zero value is a
// finding (a scrape answered 200, a bad token connected), for the socket
// flood and the resume flood it is what stayed within the caps.
type attackStats struct {
	Attempts atomic.Int64
	Refused  atomic.Int64
	Accepted atomic.Int64
	Errors   atomic.Int64

	mu    sync.Mutex // guards notes
	noted []string   // first distinct notes
}

// note records a distinct observation (at most five).
func (s *attackStats) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > 160 {
		msg = msg[:160] + "…"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.noted) >= 5 {
		return
	}
	for _, n := range s.noted {
		if n == msg {
			return
		}
	}
	s.noted = append(s.noted, msg)
}

func (s *attackStats) notes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.noted...)
}

// MarshalJSON implements json.Marshaler.
func (s *attackStats) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"attempts": s.Attempts.Load(), "refused": s.Refused.Load(), "accepted": s.Accepted.Load(),
		"errors": s.Errors.Load(), "notes": s.notes(),
	})
}

// attacks runs every hostile client of the soak against the first node (checked
// to be loopback).
type attacks struct {
	cfg      *config
	log      *slog.Logger
	stats    map[string]*attackStats
	attacker string // access token of a user no subscriber is
	sub      string // its sub
	anon     string // anon apikey
	prefix   string
}

func newAttacks(cfg *config, log *slog.Logger) *attacks {
	a := &attacks{cfg: cfg, log: log, stats: map[string]*attackStats{}, prefix: cfg.Prefix + "-atk"}
	for _, n := range cfg.Soak.selected() {
		a.stats[n] = &attackStats{}
	}
	return a
}

// sign mints an HS256 token with the run's secret.
func (a *attacks) sign(claims map[string]any) string {
	tok, err := auth.SignHS256([]byte(a.cfg.JWTSecret), claims)
	if err != nil {
		panic(err) // static claims: cannot fail
	}
	return tok
}

// run starts every attack and returns when all have stopped, at most d
// later (or when ctx ends).
func (a *attacks) run(ctx context.Context, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	now := time.Now()
	a.sub = userID(900_000)
	a.attacker = a.sign(map[string]any{"role": "authenticated", "sub": a.sub, "aud": "authenticated", "exp": now.Add(time.Hour).Unix()})
	a.anon = a.sign(map[string]any{"role": "anon", "exp": now.Add(time.Hour).Unix()})
	jobs := map[string]func(context.Context){
		"metrics-scrape": a.metricsScrape, "bad-tokens": a.badTokens, "socket-flood": a.socketFlood,
		"sse-resume-flood": a.sseResumeFlood, "huge-topics": a.hugeTopics, "like-bomb": a.likeBomb,
		"big-rows": a.bigRows, "big-presence": a.bigPresence, "presence-joiners": a.presenceJoiners,
		"join-storm": a.joinStorm,
	}
	var wg sync.WaitGroup
	for _, name := range a.cfg.Soak.selected() {
		job := jobs[name]
		wg.Add(1)
		go func() { defer wg.Done(); job(ctx) }()
	}
	wg.Wait()
	a.log.Info("soak: attacks stopped")
}

// every calls fn about rate times per second until ctx ends.
func every(ctx context.Context, rate float64, fn func()) {
	if rate <= 0 {
		return
	}
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// dial opens a vsn 2.0.0 WebSocket with apikey.
func (a *attacks) dial(ctx context.Context, apikey string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}
	return d.DialContext(ctx, a.cfg.wsURL(0, apikey), nil)
}

// readUntil reads text frames until match returns true, the socket fails
// or the deadline passes; binary frames are skipped.
func readUntil(ws *websocket.Conn, deadline time.Time, match func(m phoenix.Message) bool) error {
	ws.SetReadDeadline(deadline)
	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		if mt != websocket.TextMessage {
			continue
		}
		m, err := phoenix.DecodeText(phoenix.V2, data)
		if err == nil && match(m) {
			return nil
		}
	}
}

// drain reads and discards until the socket fails; it reports that on done.
func drain(ws *websocket.Conn, done chan<- struct{}) {
	defer close(done)
	ws.SetReadDeadline(time.Time{})
	for {
		if _, _, err := ws.NextReader(); err != nil {
			return
		}
	}
}

func send(ws *websocket.Conn, joinRef, ref, topic, event string, payload []byte) error {
	ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return ws.WriteMessage(websocket.TextMessage, phoenix.AppendText(nil, phoenix.V2, joinRef, ref, topic, event, payload))
}

func replyStatus(m phoenix.Message) (status, reason string) {
	var p struct {
		Status   string `json:"status"`
		Response struct {
			Reason string `json:"reason"`
		} `json:"response"`
	}
	json.Unmarshal(m.Payload, &p)
	return p.Status, p.Response.Reason
}

// metricsScrape reads /metrics without the admin token: the drop counters
// must not be readable by an ordinary client.
func (a *attacks) metricsScrape(ctx context.Context) {
	st := a.stats["metrics-scrape"]
	client := &http.Client{Timeout: 5 * time.Second}
	every(ctx, a.cfg.Soak.ScrapeRate, func() {
		st.Attempts.Add(1)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.cfg.endpoint(0, "/metrics"), nil)
		req.Header.Set("Authorization", "Bearer "+a.anon)
		resp, err := client.Do(req)
		if err != nil {
			st.Errors.Add(1)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			st.Accepted.Add(1)
			if strings.Contains(string(body), "messages_dropped_total") {
				st.note("drop counters readable without the admin token")
			}
			return
		}
		st.Refused.Add(1)
		st.note("HTTP %d", resp.StatusCode)
	})
}

// badTokens connects with malformed, forged and odd-claim tokens.
func (a *attacks) badTokens(ctx context.Context) {
	st := a.stats["bad-tokens"]
	now := time.Now()
	forged, _ := auth.SignHS256([]byte("not-the-secret-not-the-secret-00"), map[string]any{"role": "service_role", "exp": now.Add(time.Hour).Unix()})
	bad := []string{
		"not-a-jwt",
		forged,
		a.sign(map[string]any{"role": "anon", "exp": "tomorrow"}),
		a.sign(map[string]any{"role": "anon", "exp": -5}),
		a.sign(map[string]any{"role": "anon", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix()}),
		a.sign(map[string]any{"role": "anon", "exp": now.Add(-time.Hour).Unix()}),
		a.sign(map[string]any{"exp": now.Add(time.Hour).Unix()}),
		"eyJhbGciOiJub25lIn0.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.",
	}
	i := 0
	every(ctx, a.cfg.Soak.BadTokenRate, func() {
		tok := bad[i%len(bad)]
		i++
		st.Attempts.Add(1)
		ws, resp, err := a.dial(ctx, url.QueryEscape(tok))
		if err == nil {
			st.Accepted.Add(1)
			st.note("token %d accepted", (i-1)%len(bad))
			ws.Close()
			return
		}
		if resp == nil {
			st.Errors.Add(1)
			return
		}
		st.Refused.Add(1)
		if resp.StatusCode >= 500 {
			st.note("token %d answered %d", (i-1)%len(bad), resp.StatusCode)
		}
	})
}

// socketFlood opens and holds bare anon sockets, as a descriptor
// exhaustion attempt; refusals (429) are the caps at work.
func (a *attacks) socketFlood(ctx context.Context) {
	st := a.stats["socket-flood"]
	var mu sync.Mutex
	var held []*websocket.Conn
	defer func() {
		mu.Lock()
		for _, ws := range held {
			ws.Close()
		}
		mu.Unlock()
	}()
	go func() { // heartbeats keep them past the idle timeout
		t := time.NewTicker(20 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				mu.Lock()
				conns := append([]*websocket.Conn(nil), held...)
				mu.Unlock()
				for _, ws := range conns {
					send(ws, "", "hb", "phoenix", "heartbeat", []byte("{}"))
				}
			}
		}
	}()
	parallel(ctx, a.cfg.Soak.Sockets, 50, func(int) {
		st.Attempts.Add(1)
		ws, resp, err := a.dial(ctx, a.anon)
		switch {
		case err == nil:
			st.Accepted.Add(1)
			mu.Lock()
			held = append(held, ws)
			mu.Unlock()
			go drain(ws, make(chan struct{}))
		case resp != nil:
			st.Refused.Add(1)
			st.note("HTTP %d", resp.StatusCode)
		default:
			st.Errors.Add(1)
			st.note("%v", err)
		}
	})
	<-ctx.Done()
}

// sseResumeFlood keeps SSE.SSEFlood resume streams (last_event_id=0-0) of
// one user going: each reads for two seconds and reconnects.
func (a *attacks) sseResumeFlood(ctx context.Context) {
	st := a.stats["sse-resume-flood"]
	q := url.Values{
		"apikey": {a.anon}, "access_token": {a.attacker}, "schema": {"public"},
		"table": {"realtime_bench_rls"}, "event": {"INSERT"}, "last_event_id": {"0-0"},
	}
	u := a.cfg.endpoint(0, "/realtime/v1/sse") + "?" + q.Encode()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1, DisableKeepAlives: true}}
	var wg sync.WaitGroup
	for range a.cfg.Soak.SSEFlood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				st.Attempts.Add(1)
				rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				req, _ := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
				resp, err := client.Do(req)
				if err != nil {
					cancel()
					if ctx.Err() == nil {
						st.Errors.Add(1)
						sleepCtx(ctx, 100*time.Millisecond)
					}
					continue
				}
				if resp.StatusCode == http.StatusOK {
					st.Accepted.Add(1)
					io.Copy(io.Discard, resp.Body)
				} else {
					st.Refused.Add(1)
					b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
					st.note("HTTP %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
					sleepCtx(ctx, 100*time.Millisecond)
				}
				resp.Body.Close()
				cancel()
			}
		}()
	}
	wg.Wait()
}

// hugeTopics joins topic names of HugeTopicSize bytes, once a second per
// socket.
func (a *attacks) hugeTopics(ctx context.Context) {
	st := a.stats["huge-topics"]
	topic := "realtime:" + strings.Repeat("t", max(a.cfg.Soak.HugeTopicSize-len("realtime:"), 1))
	frame := phoenix.AppendText(nil, phoenix.V2, "1", "1", topic, "phx_join", []byte(`{"config":{}}`))
	var wg sync.WaitGroup
	for range a.cfg.Soak.HugeTopics {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ws *websocket.Conn
			defer func() {
				if ws != nil {
					ws.Close()
				}
			}()
			every(ctx, 1, func() {
				if ws == nil {
					c, _, err := a.dial(ctx, a.anon)
					if err != nil {
						st.Errors.Add(1)
						return
					}
					ws = c
				}
				st.Attempts.Add(1)
				ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
					st.Errors.Add(1)
					ws.Close()
					ws = nil
					return
				}
				var status, reason string
				err := readUntil(ws, time.Now().Add(10*time.Second), func(m phoenix.Message) bool {
					if m.Event != "phx_reply" {
						return false
					}
					status, reason = replyStatus(m)
					return true
				})
				switch {
				case err != nil:
					st.Refused.Add(1) // the connection was closed: refused too
					st.note("connection closed: %v", err)
					ws.Close()
					ws = nil
				case status == "ok":
					st.Accepted.Add(1)
				default:
					st.Refused.Add(1)
					st.note("%s", reason)
				}
			})
		}()
	}
	wg.Wait()
}

// likeBomb binds postgres_changes with a LIKE pattern built to backtrack
// against the large rows of bigRows.
func (a *attacks) likeBomb(ctx context.Context) {
	st := a.stats["like-bomb"]
	pattern := "%" + strings.Repeat("a", max(a.cfg.Soak.LikeBytes-2, 1)) + "b"
	var wg sync.WaitGroup
	for k := range a.cfg.Soak.LikeBombs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.Attempts.Add(1)
			ws, _, err := a.dial(ctx, a.anon)
			if err != nil {
				st.Errors.Add(1)
				st.note("%v", err)
				return
			}
			defer ws.Close()
			payload, _ := json.Marshal(map[string]any{
				"config": map[string]any{"postgres_changes": []any{map[string]any{
					"event": "INSERT", "schema": "public", "table": "realtime_bench_rls", "filter": "pad=like." + pattern,
				}}},
				"access_token": a.attacker,
			})
			topic := "realtime:" + a.prefix + "-like-" + strconv.Itoa(k)
			if err := send(ws, "1", "1", topic, "phx_join", payload); err != nil {
				st.Errors.Add(1)
				return
			}
			decided := false
			err = readUntil(ws, time.Now().Add(30*time.Second), func(m phoenix.Message) bool {
				switch m.Event {
				case "phx_reply":
					if s, reason := replyStatus(m); s != "ok" {
						st.Refused.Add(1)
						st.note("join: %s", reason)
						decided = true
						return true
					}
				case "system":
					var p struct{ Status, Message string }
					json.Unmarshal(m.Payload, &p)
					if p.Status == "ok" {
						st.Accepted.Add(1)
					} else {
						st.Refused.Add(1)
						st.note("%s", p.Message)
					}
					decided = true
					return true
				}
				return false
			})
			if err != nil && !decided {
				st.Errors.Add(1)
				return
			}
			done := make(chan struct{})
			go drain(ws, done)
			go func() { // heartbeats past the idle timeout
				t := time.NewTicker(20 * time.Second)
				defer t.Stop()
				for {
					select {
					case <-done:
						return
					case <-t.C:
						send(ws, "", "hb", "phoenix", "heartbeat", []byte("{}"))
					}
				}
			}()
			select {
			case <-ctx.Done():
			case <-done:
			}
		}()
	}
	wg.Wait()
}

// bigRows inserts large rows owned by the attacker: nobody else may read
// them, everyone's resume window and fan-out sees them.
func (a *attacks) bigRows(ctx context.Context) {
	st := a.stats["big-rows"]
	if a.cfg.Soak.BigRowRate <= 0 {
		return
	}
	pcfg, err := pgxpool.ParseConfig(a.cfg.DBURL)
	if err != nil {
		st.Errors.Add(1)
		st.note("%v", err)
		return
	}
	pcfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		st.Errors.Add(1)
		st.note("%v", err)
		return
	}
	defer pool.Close()
	every(ctx, a.cfg.Soak.BigRowRate, func() {
		st.Attempts.Add(1)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := pool.Exec(cctx, `INSERT INTO public.realtime_bench_rls (user_id, m, sent_ns, pad) VALUES ($1, -1, 0, repeat('a', $2))`, a.sub, a.cfg.Soak.BigRowBytes)
		if err != nil {
			if ctx.Err() == nil {
				st.Errors.Add(1)
				st.note("%v", err)
			}
			return
		}
		st.Accepted.Add(1)
	})
}

// presenceTopic is the channel of the presence attacks.
func (a *attacks) presenceTopic() string { return "realtime:" + a.prefix + "-presence" }

// bigPresence has Presence anon sockets track PresenceBytes each in one
// channel and stay.
func (a *attacks) bigPresence(ctx context.Context) {
	st := a.stats["big-presence"]
	blob, _ := json.Marshal(map[string]any{"event": "track", "type": "presence", "payload": map[string]string{"blob": strings.Repeat("p", a.cfg.Soak.PresenceBytes)}})
	var wg sync.WaitGroup
	for k := range a.cfg.Soak.Presence {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.Attempts.Add(1)
			ws, _, err := a.dial(ctx, a.anon)
			if err != nil {
				st.Errors.Add(1)
				st.note("%v", err)
				return
			}
			defer ws.Close()
			join := []byte(`{"config":{"presence":{"enabled":true,"key":"atk-` + strconv.Itoa(k) + `"}}}`)
			if send(ws, "1", "1", a.presenceTopic(), "phx_join", join) != nil {
				st.Errors.Add(1)
				return
			}
			var status, reason string
			match := func(ref string) func(m phoenix.Message) bool {
				return func(m phoenix.Message) bool {
					switch {
					case m.Event == "phx_reply" && m.Ref == ref:
						status, reason = replyStatus(m)
						return true
					case m.Event == "phx_close", m.Event == "system" && strings.Contains(string(m.Payload), `"error"`):
						// An oversized track closes the channel with a
						// system error instead of a reply.
						status, reason = "closed", string(m.Payload)
						return true
					}
					return false
				}
			}
			if err := readUntil(ws, time.Now().Add(30*time.Second), match("1")); err != nil || status != "ok" {
				st.Refused.Add(1)
				st.note("join: %s %v", reason, err)
				return
			}
			if send(ws, "1", "2", a.presenceTopic(), "presence", blob) != nil {
				st.Errors.Add(1)
				return
			}
			if err := readUntil(ws, time.Now().Add(30*time.Second), match("2")); err != nil || status != "ok" {
				st.Refused.Add(1)
				st.note("track: %s %v", reason, err)
			} else {
				st.Accepted.Add(1)
			}
			done := make(chan struct{})
			go drain(ws, done)
			select {
			case <-ctx.Done():
			case <-done:
			}
		}()
	}
	wg.Wait()
}

// presenceJoiners joins the big presence channel every two seconds with
// presence on and checks the joiner is not dropped for the size of the
// state it is sent.
func (a *attacks) presenceJoiners(ctx context.Context) {
	st := a.stats["presence-joiners"]
	sleepCtx(ctx, 5*time.Second) // let bigPresence fill the channel
	n := 0
	every(ctx, 0.5, func() {
		n++
		st.Attempts.Add(1)
		ws, _, err := a.dial(ctx, a.anon)
		if err != nil {
			st.Errors.Add(1)
			return
		}
		defer ws.Close()
		join := []byte(`{"config":{"presence":{"enabled":true,"key":"joiner-` + strconv.Itoa(n) + `"}}}`)
		if send(ws, "1", "1", a.presenceTopic(), "phx_join", join) != nil {
			st.Errors.Add(1)
			return
		}
		closed := false
		err = readUntil(ws, time.Now().Add(20*time.Second), func(m phoenix.Message) bool {
			if m.Event == "phx_close" || (m.Event == "system" && strings.Contains(string(m.Payload), `"error"`)) {
				closed = true
				return true
			}
			return m.Event == "presence_state"
		})
		if err != nil || closed {
			st.Refused.Add(1)
			st.note("joiner dropped: %v", err)
			return
		}
		// Stay a second: a joiner dropped as a slow consumer shows here.
		if err := readUntil(ws, time.Now().Add(time.Second), func(m phoenix.Message) bool { return m.Event == "phx_close" }); err == nil {
			st.Refused.Add(1)
			st.note("joiner's channel closed")
			return
		} else if ne, ok := err.(interface{ Timeout() bool }); !ok || !ne.Timeout() {
			st.Refused.Add(1)
			st.note("joiner dropped: %v", err)
			return
		}
		st.Accepted.Add(1)
	})
}

// joinStorm joins 100 channels at once on one socket, again and again;
// the join bucket should serve the first burst and refuse the churn.
func (a *attacks) joinStorm(ctx context.Context) {
	st := a.stats["join-storm"]
	round := 0
	every(ctx, 0.5, func() {
		round++
		ws, _, err := a.dial(ctx, a.anon)
		if err != nil {
			st.Errors.Add(1)
			return
		}
		defer ws.Close()
		for i := range 100 {
			ref := strconv.Itoa(i + 1)
			if send(ws, ref, ref, "realtime:"+a.prefix+"-storm-"+strconv.Itoa(i%25), "phx_join", []byte(`{"config":{}}`)) != nil {
				break
			}
			st.Attempts.Add(1)
		}
		replies := 0
		readUntil(ws, time.Now().Add(10*time.Second), func(m phoenix.Message) bool {
			if m.Event != "phx_reply" {
				return false
			}
			replies++
			if s, reason := replyStatus(m); s == "ok" {
				st.Accepted.Add(1)
			} else {
				st.Refused.Add(1)
				st.note("%s", reason)
			}
			return replies == 100
		})
	})
}
