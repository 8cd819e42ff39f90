package configs_test

import (
	"strings"
	"testing"

	"github.com/cairnhq/cairn/configs"
)

// Issue 15: capture's memory and disk bounds have defaults that keep the
// process within 256 MiB and the files within 8 GiB, and refuse nonsense
// naming the field.
func TestCaptureMemoryFields(t *testing.T) {
	c := mustLoad(t, okBase, configs.Options{})
	if cp := c.Capture; cp.MaxQueueBytes != 32<<20 || cp.MemoryBytes != 16<<20 || cp.MaxTotalBytes != 8<<30 {
		t.Errorf("capture defaults: max_queue_bytes %d, memory_bytes %d, max_total_bytes %d; want 32 MiB, 16 MiB, 8 GiB",
			cp.MaxQueueBytes, cp.MemoryBytes, cp.MaxTotalBytes)
	}
	for _, tt := range []struct{ yaml, want string }{
		{"capture: { max_queue_bytes: 1000 }\n", "capture.max_queue_bytes: 1000 is below 1048576"},
		{"capture: { max_queue_bytes: -1 }\n", "capture.max_queue_bytes: -1 is below 1048576"},
		{"capture: { memory_bytes: 5 }\n", "capture.memory_bytes: 5 is below 1048576"},
		{"capture: { max_file_bytes: 1048576, max_total_bytes: 1000 }\n", "capture.max_total_bytes: 1000 is below capture.max_file_bytes (1048576)"},
		{"capture: { max_total_bytes: -2 }\n", "capture.max_total_bytes: -2 is below capture.max_file_bytes"},
	} {
		_, err := load(t, okBase+tt.yaml, configs.Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%q) = %v; want %q", tt.yaml, err, tt.want)
		}
	}
	c = mustLoad(t, okBase+"capture: { max_queue_bytes: 16777216, memory_bytes: 8388608, max_total_bytes: -1 }\n", configs.Options{})
	if cp := c.Capture; cp.MaxQueueBytes != 16<<20 || cp.MemoryBytes != 8<<20 || cp.MaxTotalBytes != -1 {
		t.Errorf("capture = %+v", cp)
	}
}

// server.max_inflight_body_bytes bounds the request bodies in flight.
func TestInflightBodyBytesField(t *testing.T) {
	if c := mustLoad(t, okBase, configs.Options{}); c.Server.MaxInflightBodyBytes != 24<<20 {
		t.Errorf("server.max_inflight_body_bytes default = %d; want 24 MiB", c.Server.MaxInflightBodyBytes)
	}
	_, err := load(t, okBase+"server: { max_inflight_body_bytes: 100 }\n", configs.Options{})
	if err == nil || !strings.Contains(err.Error(), "server.max_inflight_body_bytes: 100 is below 1048576") {
		t.Errorf("Load(max_inflight_body_bytes: 100) = %v; want a field error", err)
	}
}
