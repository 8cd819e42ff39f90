//go:build !race

package proxy

import "testing"

func TestFramingErrorAllocs(t *testing.T) {
	h := parsedHeader(t, typicalSDKHead)
	if n := testing.AllocsPerRun(100, func() { _ = framingError(h) }); n != 0 {
		t.Errorf("framingError allocates %v times per request; want 0", n)
	}
}
