package channels

// maxDirectTopic is the largest topic whose broadcasts and presence diffs
// may be written directly by the fan-out (see LaterWriter). A broadcast to
// a bigger topic is a sustained load of its own (every member, every
// message), where the writers' parallelism and batching beat one syscall
// per frame on the sender's goroutine (docs/benchmarks.md, broadcast
// fan-out). postgres_changes use the size of the batch instead
// (directChanges).
const maxDirectTopic = 256

// deliverTo delivers f to s, letting the connection write it at once only
// when direct is set: in *wb, when the connection can gather its write
// there (see BatchWriter).
func deliverTo(s *Subscription, f Frame, direct bool, wb *WriteBatch) bool {
	if direct {
		if bw, ok := s.Writer.(BatchWriter); ok {
			return s.count(bw.EnqueueIn(f, wb))
		}
	}
	if !direct {
		if lw, ok := s.Writer.(LaterWriter); ok {
			return s.count(lw.EnqueueLater(f))
		}
	}
	return s.deliver(f)
}
