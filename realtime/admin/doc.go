// Package admin is the operator's inspector: a JSON API under /admin/api/,
// an embedded single-page UI at /admin/, and the Prometheus collector of the
// fan-out pipeline (messages out, drops by reason, RLS and commit→fan-out
// latency, replication lag).
//
// It answers "why did this subscriber not get that event?": every channel
// with its bindings and counts, every subscriber with its messages sent and
// not sent by [channels.DropReason], the change source's positions and lag,
// and a live tail of what the hub fans out.
//
// Every API request must carry Authorization: Bearer with the operator token
// (compared in constant time) or a JWT whose role is service_role; anything
// else gets 401 with a JSON error. The page itself is public: it holds no
// data until the operator enters a token.
//
// Invariants: the inspector only reads hub snapshots ([channels.Hub.Topics],
// [channels.Hub.Subscribers], [channels.Hub.MessagesOut]). It installs the
// hub's tap only while at least one live tail is open (on the first, removed
// with the last), so fan-out builds no tap events otherwise; the callback
// does non-blocking channel sends only, so fan-out never waits on an
// operator. Each live-tail stream is written by its own handler
// goroutine; a tail that cannot keep up loses events (and is told how many)
// instead of slowing the hub.
package admin
