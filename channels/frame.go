package channels

// Frame is one encoded message ready for a transport. A Frame is immutable
// once built and is shared by every subscriber that receives it.
type Frame struct {
	// Data is the encoded message.
	Data []byte
	// Binary marks a binary WebSocket message (text otherwise).
	Binary bool
	// Cursor is the change position of a postgres_changes frame (zero for
	// other frames); resumable transports use it to skip duplicates.
	Cursor Cursor
}

// Writer is a connection's outgoing queue, implemented by transports.
type Writer interface {
	// Enqueue queues f for sending and never blocks. It returns false when the
	// connection is closing or has just been closed as a slow consumer; the
	// caller must not retry.
	Enqueue(f Frame) bool
}

// Encoder frames hub messages for one protocol version. Implementations must
// be safe for concurrent use and comparable (the hub uses them as map keys).
type Encoder interface {
	// EncodeBroadcast frames a broadcast for topic. ok is false when the
	// message cannot be delivered in this encoding (binary payload to a JSON
	// only client).
	EncodeBroadcast(topic string, b *Broadcast) (f Frame, ok bool)
	// EncodePresenceDiff frames a presence_diff whose payload is diff (JSON).
	EncodePresenceDiff(topic string, diff []byte) Frame
	// EncodePostgresChange frames a postgres_changes event for topic with
	// the matching binding ids and the shared, pre-encoded data object.
	// cursor identifies the change for resumable transports.
	EncodePostgresChange(topic string, ids []int64, data []byte, cursor Cursor) Frame
	// EncodeSystem frames a system message (join_ref null) for topic.
	EncodeSystem(topic string, payload []byte) Frame
}

// LaterWriter is a Writer that may write a frame at once, inside Enqueue,
// and can be told not to: EnqueueLater queues f for the connection's own
// writer. A long fan-out switches to it so that its remaining frames are
// written by many goroutines (and, under load, many frames per write)
// instead of one syscall per frame on the fan-out's goroutine.
type LaterWriter interface {
	Writer
	// EnqueueLater is Enqueue without a write from the caller's goroutine.
	EnqueueLater(f Frame) bool
}

// BatchWriter is a Writer whose write at once can be gathered with other
// connections' into a WriteBatch, made together when the fan-out flushes
// it: one system call for many sockets where the transport can
// (docs/protocol.md §1, "Batched writes").
type BatchWriter interface {
	Writer
	// EnqueueIn is Enqueue whose write at once, if the connection is idle,
	// joins *wb; the first BatchWriter that needs a batch stores one there.
	// A frame that joined is written by (*wb).Flush at the latest.
	EnqueueIn(f Frame, wb *WriteBatch) bool
}

// WriteBatch gathers the writes of one fan-out goroutine. It is not safe
// for concurrent use.
type WriteBatch interface {
	// Flush makes every write gathered and releases the batch; it is not
	// used again.
	Flush()
}
