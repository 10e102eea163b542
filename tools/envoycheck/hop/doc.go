// Package hop is a small Go stand-in for the Envoy gateway, built from the
// same bootstrap (docs/envoy/envoy.yaml), so that the service can be tested
// through a real proxy hop on machines that have no Envoy binary.
//
// [New] reads the route table of the bootstrap's HTTP connection manager and
// serves it with one httputil.ReverseProxy per route. What is mirrored, and
// how:
//
//   - Route selection: first match wins, on path, prefix or
//     path_separated_prefix, plus header matchers (":method" included).
//     A match feature the mirror does not implement makes New fail rather
//     than route differently from Envoy.
//   - prefix_rewrite, the target cluster (its first endpoint, or the
//     address given in [Options.Upstreams]) and the original Host header.
//   - The route timeout (unset means Envoy's 15 s, 0 means none), answered
//     with 504 like Envoy's "upstream request timeout".
//   - WebSocket upgrades only where the route (or the connection manager)
//     enables them; elsewhere an upgrade request gets 403, as Envoy answers.
//   - Streaming: every response is flushed as it arrives (Envoy forwards
//     data as it comes; nothing in the shipped chain buffers).
//   - The stream idle timeout: the route's idle_timeout, else the
//     connection manager's stream_idle_timeout, else Envoy's 5 min default,
//     measured as Envoy does: time without bytes in either direction. It is
//     enforced on the downstream connection itself (see idleConn), because a
//     WebSocket is hijacked out of net/http and no server timeout reaches it
//     any more; activity on the client socket in either direction is exactly
//     "stream activity" for a one-stream-per-connection HTTP/1.1 client.
//     [Options.IdleTimeout] replaces the configured value so a test can wait
//     it out in seconds.
//
// Not mirrored, because they are checked statically by package envoycheck
// instead: CORS, the local rate limit, compression, retries, health checks,
// circuit breakers, outlier detection, access logs, path normalisation.
package hop
