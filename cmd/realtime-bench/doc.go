// Command realtime-bench is a load generator for the realtime service. It
// speaks the Phoenix protocol of supabase-js (vsn 2.0.0) and the service's
// SSE stream, opens many subscribers with distinct user tokens, generates
// broadcasts or database writes at a fixed rate for a bounded time, and
// reports throughput, latency, losses and duplicates, connect and join
// rates, and the service's memory and CPU from /proc. See docs/benchmarks.md.
package main
