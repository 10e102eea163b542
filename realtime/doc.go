// Package realtime is the service's network edge: the HTTP server, the
// Phoenix-channels WebSocket transport that supabase-js speaks, and the REST
// broadcast endpoints. It turns frames into calls on a [channels.Hub] and
// hub frames back into bytes; the hub never sees a socket.
//
// Each connection has one read goroutine (the HTTP handler) and at most one
// write goroutine at a time, started when frames are queued and gone when the
// queue is empty, so an idle connection costs one goroutine. The outgoing
// queue is bounded in bytes; a client that cannot keep up is closed as a slow
// consumer and never slows anyone else.
package realtime
