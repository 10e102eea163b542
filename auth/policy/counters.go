package policy

import "sync/atomic"

// readPaths counts read probes by how they were judged, process-wide.
var readPaths struct{ image, insert atomic.Int64 }

// ReadProbePaths returns how many read probes this process judged on row
// images and how many by inserting probe rows (docs/protocol.md §9.2).
func ReadProbePaths() (image, insert int64) {
	return readPaths.image.Load(), readPaths.insert.Load()
}
