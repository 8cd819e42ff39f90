package proxy

import (
	"fmt"
	"io"
	"runtime/metrics"
)

// goMemorySamples are the runtime's memory classes /metrics exposes, read
// without stopping the world (runtime/metrics), so that an operator sees
// where the process's memory goes: live heap, goroutine stacks, and what
// the runtime holds for reuse (issue 15: memory bounded at any body size).
var goMemorySamples = [...]struct{ runtime, name, help string }{
	{"/memory/classes/heap/objects:bytes", "go_memory_heap_objects_bytes", "Bytes of heap objects, live and not yet swept."},
	{"/memory/classes/heap/unused:bytes", "go_memory_heap_unused_bytes", "Heap bytes reserved for objects but unused."},
	{"/memory/classes/heap/free:bytes", "go_memory_heap_free_bytes", "Heap bytes free and not yet returned to the OS."},
	{"/memory/classes/os-stacks:bytes", "go_memory_os_stacks_bytes", "Stack bytes allocated by the OS for threads."},
	{"/memory/classes/heap/stacks:bytes", "go_memory_stacks_bytes", "Goroutine stack bytes."},
	{"/memory/classes/total:bytes", "go_memory_total_bytes", "All memory mapped by the Go runtime."},
}

// writeMemoryMetrics writes the body budget's gauges and the runtime's
// memory classes.
func (g *Gateway) writeMemoryMetrics(w io.Writer) {
	fmt.Fprintf(w, "# HELP cairn_inflight_body_bytes Request body bytes held by requests in flight (bound: server.max_inflight_body_bytes).\n# TYPE cairn_inflight_body_bytes gauge\ncairn_inflight_body_bytes %d\n", g.bodies.inUse.Load())
	fmt.Fprintf(w, "# HELP cairn_body_budget_refused_total Requests refused with 429 overloaded after waiting for room in server.max_inflight_body_bytes.\n# TYPE cairn_body_budget_refused_total counter\ncairn_body_budget_refused_total %d\n", g.bodies.refused.Load())
	writeGoMemory(w)
}

func writeGoMemory(w io.Writer) {
	s := make([]metrics.Sample, len(goMemorySamples))
	for i := range goMemorySamples {
		s[i].Name = goMemorySamples[i].runtime
	}
	metrics.Read(s)
	for i, m := range goMemorySamples {
		if s[i].Value.Kind() != metrics.KindUint64 {
			continue
		}
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", m.name, m.help, m.name, m.name, s[i].Value.Uint64())
	}
}
