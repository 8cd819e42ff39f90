package proxy

import (
	"context"
	"time"

	"github.com/cairnhq/cairn/routing/ratelimit"
)

// chargeLoop sends queued token charges until the queue closes at
// shutdown. The limiter bounds each call by its own Redis deadline.
func (g *Gateway) chargeLoop() {
	defer g.workers.Done()
	for c := range g.charges {
		ctx, cancel := context.WithTimeout(g.baseCtx, time.Second)
		g.limiter.Charge(ctx, c.key, c.limits, c.reqID, c.tokens, c.res)
		cancel()
		g.chargesPending.Add(-1)
	}
}

// chargeUsage charges a finished request's actual token usage to its key,
// once per gateway request ID. The in-memory limiter is charged inline (a
// mutex, no I/O), so the next request of the key already sees the charge;
// the Redis limiter is charged by chargeLoop, so a slow or hung Redis never
// adds a second round trip to a response.
func (g *Gateway) chargeUsage(c charge) {
	if !g.chargeAsync {
		g.limiter.Charge(g.baseCtx, c.key, c.limits, c.reqID, c.tokens, c.res)
		return
	}
	g.enqueueCharge(c)
}

func (g *Gateway) enqueueCharge(c charge) {
	defer func() {
		// The channel closes at shutdown after the API drained; a charge
		// racing it is counted, not lost silently.
		if recover() != nil {
			g.chargesPending.Add(-1)
			g.chargeDropped.Add(1)
		}
	}()
	g.chargesPending.Add(1)
	select {
	case g.charges <- c:
	default:
		g.chargesPending.Add(-1)
		g.chargeDropped.Add(1)
	}
}

type charge struct {
	key    string
	limits ratelimit.Limits
	reqID  string
	tokens int
	// res is the token budget the limiter reserved at admission.
	res ratelimit.Reservation
}
