package proxy

import (
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/schema"
)

// StatusError is an error that knows the HTTP status and OpenAI error type
// and code it is reported with. writeError is the one place that turns it
// into OpenAI error JSON.
type StatusError struct {
	Status  int
	Type    string // OpenAI error type: invalid_request_error, authentication_error, …
	Code    string // OpenAI error code, may be empty
	Param   string // the offending request field, may be empty
	Outcome string // capture.Outcome* recorded for this error
	Err     error
}

func (e *StatusError) Error() string { return e.Err.Error() }
func (e *StatusError) Unwrap() error { return e.Err }

func statusErr(status int, typ, code, outcome, msg string) *StatusError {
	return &StatusError{Status: status, Type: typ, Code: code, Outcome: outcome, Err: errors.New(msg)}
}

var (
	errMissingKey = statusErr(fasthttp.StatusUnauthorized, "invalid_request_error", "invalid_api_key", capture.OutcomeUnauthorized,
		"missing API key: send the gateway key as 'Authorization: Bearer <key>'")
	errBadKey = statusErr(fasthttp.StatusUnauthorized, "invalid_request_error", "invalid_api_key", capture.OutcomeUnauthorized,
		"incorrect API key provided")
	errNotFound = statusErr(fasthttp.StatusNotFound, "invalid_request_error", "unknown_url", capture.OutcomeNotFound,
		"unknown endpoint")
	errMethod = statusErr(fasthttp.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", capture.OutcomeBadRequest,
		"method not allowed")
	errOverloaded = statusErr(fasthttp.StatusTooManyRequests, "server_error", "overloaded", capture.OutcomeOverloaded,
		"the gateway is at its concurrency limit (server.max_concurrency); retry shortly")
	errShuttingDown = statusErr(fasthttp.StatusServiceUnavailable, "server_error", "shutting_down", capture.OutcomeOverloaded,
		"the gateway is shutting down")
	// errCutAtDrain answers a request whose upstream had not answered by
	// the drain deadline (the streams' server_shutting_down, before any
	// byte was sent): SDKs retry a 503, on another replica.
	errCutAtDrain = statusErr(fasthttp.StatusServiceUnavailable, "server_error", "server_shutting_down", capture.OutcomeShutdown,
		"the gateway is shutting down and its upstream had not answered by the drain deadline; retry the request")
)

func badRequest(param, msg string) *StatusError {
	e := statusErr(fasthttp.StatusBadRequest, "invalid_request_error", "", capture.OutcomeBadRequest, msg)
	e.Param = param
	return e
}

// asStatusError classifies any error for the client; unknown errors are a
// 500 whose text is not leaked.
func asStatusError(err error) *StatusError {
	var se *StatusError
	if errors.As(err, &se) {
		return se
	}
	var re *schema.RequestError
	if errors.As(err, &re) {
		return badRequest(re.Param, re.Message)
	}
	return statusErr(fasthttp.StatusInternalServerError, "server_error", "internal_error", capture.OutcomeInternalError,
		"internal gateway error")
}

// writeError writes err as OpenAI error JSON with its status. Headers that
// were already set (x-request-id, rate-limit headers) stay.
func writeError(ctx *fasthttp.RequestCtx, se *StatusError) {
	ctx.Response.ResetBody()
	ctx.SetStatusCode(se.Status)
	ctx.SetContentType("application/json")
	if se.Status == fasthttp.StatusTooManyRequests || se.Status >= 500 {
		if se.Code == "rate_limit_exceeded" {
			// SDKs read x-should-retry before their own policy.
			ctx.Response.Header.Set("x-should-retry", "true")
		}
	}
	if se.Status == fasthttp.StatusRequestEntityTooLarge {
		// The same body gets the same answer: SDKs must not upload it again.
		ctx.Response.Header.Set("x-should-retry", "false")
	}
	buf := ctx.Response.BodyWriter()
	_, _ = buf.Write(schema.AppendError(nil, se.Error(), se.Type, se.Param, se.Code))
}

func itoa(n int) string { return strconv.Itoa(n) }
