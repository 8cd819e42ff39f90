package capture

import (
	"os"
	"path/filepath"
)

// defaultMaxTotalBytes is capture.max_total_bytes's default.
const defaultMaxTotalBytes = 8 << 30

// Reasons capture files are deleted, the reason label of
// cairn_capture_files_pruned_total.
const (
	// PrunedRetention: the file's day is capture.retention_days old.
	PrunedRetention = iota
	// PrunedMaxTotal: the files passed capture.max_total_bytes; the
	// oldest went first.
	PrunedMaxTotal
	numPruneReasons
)

var pruneReasonNames = [numPruneReasons]string{"retention", "max_total_bytes"}

// FilesPruned is how many capture files were deleted for reason
// (PrunedRetention, PrunedMaxTotal).
func (m *Metrics) FilesPruned(reason int) uint64 { return m.filesPruned[reason].Load() }

// remove deletes a capture file and counts it.
func (s *fileSink) remove(path string, size int64, reason int) bool {
	if err := os.Remove(path); err != nil {
		return false
	}
	s.m.filesPruned[reason].Add(1)
	s.m.bytesPruned[reason].Add(uint64(max(size, 0)))
	return true
}

// pruneTotal deletes the oldest capture files (never the open one, named
// current) until the others leave the open file room to grow to
// capture.max_file_bytes within capture.max_total_bytes, so that the
// files never hold more than the cap (issue 15: 4.2 GB in 30 s of 1 MB
// bodies). It runs at every rotation, when a file reaches its size or the
// day turns.
func (s *fileSink) pruneTotal(current string) {
	if s.maxTotal <= 0 {
		return
	}
	names, err := listFiles(s.dir)
	if err != nil {
		return
	}
	sizes := make([]int64, len(names))
	var total int64
	for i, n := range names {
		if n == current {
			continue
		}
		if st, err := os.Stat(n); err == nil {
			sizes[i] = st.Size()
			total += sizes[i]
		}
	}
	room := s.maxTotal - s.maxBytes
	for i, n := range names {
		if total <= room {
			return
		}
		if n == current {
			continue
		}
		if s.remove(n, sizes[i], PrunedMaxTotal) {
			total -= sizes[i]
		}
	}
}

// fileSize is the size of path, or 0.
func fileSize(path string) int64 {
	st, err := os.Stat(filepath.Clean(path))
	if err != nil {
		return 0
	}
	return st.Size()
}
