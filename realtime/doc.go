// Package realtime is the service's network edge: the HTTP server, the
// Phoenix-channels WebSocket transport that supabase-js speaks, Server-Sent
// Events, and the REST broadcast endpoints (docs/protocol.md, docs/sse.md).
//
// One [session] type holds what a subscriber connection is, whatever
// carries it: credentials (read in one order by every endpoint, see
// credentials.go), joined channels with their [channels.Subscription]s,
// token expiry and refresh, postgres_changes bindings and limits. The
// transports only frame and write: wsConn (websocket.go, dispatch.go,
// join.go, push.go) reads Phoenix frames and turns them into session calls;
// sseStream (sse.go) opens one channel from the query string.
//
// Everything a connection sends goes through its [outbox] (outbox.go): a
// queue bounded in bytes with one writer goroutine, started when frames
// are queued and gone when the queue is empty, so an idle connection costs
// one goroutine (its reader) on WebSocket. A client that cannot keep up,
// whether its queue passes the budget or a write misses its deadline, is
// closed with a typed reason and never slows anyone else.
package realtime
