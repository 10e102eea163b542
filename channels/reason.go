package channels

// CloseReason says why a connection or subscription ended. One table in the
// transport maps each reason to wire frames and close codes.
type CloseReason uint8

const (
	// ReasonClientLeft means the client left or disconnected.
	ReasonClientLeft CloseReason = iota
	// ReasonSlowConsumer means the outgoing queue passed its byte budget.
	ReasonSlowConsumer
	// ReasonTokenExpired means the channel's JWT expired.
	ReasonTokenExpired
	// ReasonTokenInvalid means an access_token push carried a bad token.
	ReasonTokenInvalid
	// ReasonServerShutdown means the server is stopping.
	ReasonServerShutdown
	// ReasonRateLimit means a rate limit closed the channel or connection.
	ReasonRateLimit
	// ReasonReplaced means a new join on the same topic replaced the channel.
	ReasonReplaced
	// ReasonAdmin means an operator disconnected the subscriber.
	ReasonAdmin
	// ReasonIdle means nothing was received for too long.
	ReasonIdle
	// ReasonProtocol means the client broke the protocol beyond repair.
	ReasonProtocol
	// ReasonWriteDeadline means a write to the client missed its deadline.
	ReasonWriteDeadline
)

var reasonNames = [...]string{"client_left", "slow_consumer", "token_expired", "token_invalid", "server_shutdown", "rate_limit", "replaced", "admin", "idle", "protocol", "write_deadline"}

// String returns a stable snake_case name, used in logs and metrics.
func (r CloseReason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// SlowConsumer reports whether r means the client could not keep up: its
// queue passed the byte budget or a write missed its deadline.
func (r CloseReason) SlowConsumer() bool {
	return r == ReasonSlowConsumer || r == ReasonWriteDeadline
}

// DropReason says why one message was not sent to one subscriber.
type DropReason uint8

const (
	// DropFilter means a postgres_changes filter did not match.
	DropFilter DropReason = iota
	// DropRLS means row level security hid the row from the subscriber.
	DropRLS
	// DropColumnPrivilege means the subscriber may not read a key column.
	DropColumnPrivilege
	// DropPayloadTooLarge means the payload was over the size limit.
	DropPayloadTooLarge
	// DropRateLimit means a rate limit dropped the message.
	DropRateLimit
	// DropSlowConsumer means the subscriber's queue was full.
	DropSlowConsumer
	// DropEncoding means the message cannot be framed for the subscriber's
	// protocol (binary payload to a vsn 1.0.0 client).
	DropEncoding
	// DropFanoutBudget means the subscriber's class used up its fan-out
	// time budget for the batch (docs/protocol.md §4.7).
	DropFanoutBudget
	numDropReasons
)

var dropNames = [...]string{"filter_mismatch", "rls_denied", "column_privilege", "payload_too_large", "rate_limit", "slow_consumer", "encoding", "fanout_budget"}

// String returns a stable snake_case name, used in the inspector and metrics.
func (r DropReason) String() string {
	if int(r) < len(dropNames) {
		return dropNames[r]
	}
	return "unknown"
}

// DropReasons lists every DropReason in order.
func DropReasons() []DropReason {
	out := make([]DropReason, numDropReasons)
	for i := range out {
		out[i] = DropReason(i)
	}
	return out
}
