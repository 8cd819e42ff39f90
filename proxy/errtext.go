package proxy

import (
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/cairnhq/cairn/schema"
)

// streamBreakText says why an upstream stream broke, for the client's
// terminal SSE error event. It names the kind of failure and never the
// error's own text, which carries socket addresses ("read tcp
// 10.0.0.5:41234->10.0.0.9:443: …") and other internals (issue 12.15).
// Timeouts are told apart by the caller, which knows the deadlines.
func streamBreakText(err error) string {
	var oe *net.OpError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "stream ended before the response finished"
	case errors.Is(err, syscall.ECONNRESET):
		return "the upstream reset the connection"
	case errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return "the upstream connection closed"
	case errors.As(err, &oe):
		return "upstream connection error (" + oe.Op + ")"
	case errors.Is(err, schema.ErrEventTooLarge):
		return "the upstream sent an event larger than the gateway accepts"
	}
	return "upstream connection error"
}

// timeoutText says which stream deadline a read timeout hit: the whole
// stream's stream_max_duration when the deadline was reached at (or
// within a few milliseconds of) its end, else stream_idle_timeout.
func timeoutText(now, end time.Time, idle, maxDur time.Duration) string {
	if !end.IsZero() && !now.Before(end.Add(-5*time.Millisecond)) {
		return "upstream stream exceeded stream_max_duration (" + maxDur.String() + ")"
	}
	return "upstream stream stalled beyond stream_idle_timeout (" + idle.String() + ")"
}
