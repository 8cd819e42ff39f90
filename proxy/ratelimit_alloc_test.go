//go:build !race

package proxy

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/routing/ratelimit"
)

// TestRateLimitHeadersAllocs: the six x-ratelimit-* headers cost no
// allocation once the response header has room for them.
func TestRateLimitHeadersAllocs(t *testing.T) {
	var h fasthttp.ResponseHeader
	l := ratelimit.Limits{RPM: 1000, TPM: 1000000}
	d := ratelimit.Decision{Allowed: true, LimitRequests: 1000, RemainingRequests: 998, ResetRequests: 41 * time.Second,
		LimitTokens: 1000000, RemainingTokens: 987654, ResetTokens: 41*time.Second + 300*time.Millisecond}
	setRateLimitHeaders(&h, l, d)
	if n := testing.AllocsPerRun(100, func() { setRateLimitHeaders(&h, l, d) }); n > 0 {
		t.Errorf("setRateLimitHeaders allocates %v times; want 0", n)
	}
}
