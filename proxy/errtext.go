package proxy

import (
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/schema"
	"github.com/cairnhq/cairn/schema/anthropic"
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

// failureText says why an upstream attempt failed, for the client's error
// message: the kind of failure in a fixed vocabulary, never the error's
// own text, which carries socket addresses ("dial tcp 10.0.0.9:443: …",
// a resolver's "lookup api.internal on 10.0.0.2:53") of the provider's
// network (issue 12.15). The attempt in the record keeps the detail.
func failureText(err error) string {
	var dns *net.DNSError
	var ev *anthropic.EventError
	switch {
	case errors.As(err, &ev):
		// The provider's own words (its key is redacted on the way out).
		return ev.Error()
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.As(err, &dns):
		return "the provider's host name did not resolve"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no free connection to the upstream"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return "response body too large"
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return "the upstream closed the connection before answering"
	case isDialError(err):
		return "connect failed"
	}
	return streamBreakText(err)
}
