//go:build !race

package capture

import "testing"

// Sum runs on the request path: one allocation, the result.
func TestUserHasherAllocs(t *testing.T) {
	h, _ := NewUserHasher([]byte("0123456789abcdef-deployment"))
	_ = h.Sum("warm the pool")
	if n := testing.AllocsPerRun(100, func() { _ = h.Sum("alice@example.com") }); n > 1 {
		t.Errorf("Sum allocates %v times; want at most 1 (the result)", n)
	}
}
