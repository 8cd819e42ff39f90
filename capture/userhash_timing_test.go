package capture

import "testing"

// BenchmarkUserHasherSum is the per-request cost of recording a user hash.
func BenchmarkUserHasherSum(b *testing.B) {
	b.ReportAllocs()
	h, _ := NewUserHasher([]byte("0123456789abcdef-deployment-key!"))
	var sink string
	for b.Loop() {
		sink = h.Sum("user-8f14e45fceea167a5a36dedd4bea2543")
	}
	_ = sink
}
