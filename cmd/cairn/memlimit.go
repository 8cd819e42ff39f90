package main

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/cairnhq/cairn/configs"
)

// baseMemoryLimit is the soft memory limit with the default budgets:
// server.max_inflight_body_bytes (24 MiB of bodies in flight, each held
// about three times while it is served: the server's buffer, the owned
// copy, the upstream rewrite), capture.max_queue_bytes (32 MiB) and
// capture.memory_bytes (16 MiB) keep the live heap under ~150 MiB at any
// body size; the limit makes the garbage collector keep the heap within
// it instead of letting it double (GOGC=100), and leaves the binary's
// own pages and the runtime's overhead (~30 MiB of RSS above the limit,
// measured) room within 256 MiB of RSS (issue 15).
const baseMemoryLimit = 208 << 20

// memoryLimit is the soft memory limit for cfg: the base, plus what the
// config's budgets add over their defaults.
func memoryLimit(cfg *configs.Config) int64 {
	extra := 3*(cfg.Server.MaxInflightBodyBytes-24<<20) + (cfg.Capture.MaxQueueBytes - 32<<20) + (cfg.Capture.MemoryBytes - 16<<20)
	return baseMemoryLimit + max(extra, 0)
}

// setMemoryLimit gives the runtime a soft memory limit fitted to cfg's
// budgets, unless the operator set GOMEMLIMIT (which wins).
func setMemoryLimit(cfg *configs.Config, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := memoryLimit(cfg)
	debug.SetMemoryLimit(limit)
	log.Debug("soft memory limit set; GOMEMLIMIT overrides it", "bytes", limit)
}
