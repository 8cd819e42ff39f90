//go:build unix

package capture

import (
	"syscall"
	"testing"
	"time"
)

// processCPU returns the CPU time (user and system) the process used so
// far, GC workers included.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports cpu-ns/op since start: unlike ns/op it does not grow
// when other processes compete for the CPU, which makes it the steadier
// figure on a shared machine.
func reportCPU(b *testing.B, start time.Duration) {
	if d := processCPU() - start; d > 0 && b.N > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}
