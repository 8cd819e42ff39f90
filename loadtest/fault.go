package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Fault describes how a Mock misbehaves for a model. The zero value is no
// fault. Fields combine: Delay then Hang/Status/Disconnect, and the reply
// transforms (BrokenJSON, WrapToolArgs, LegacyFunctionCall, Tokens) apply to
// whatever reply is produced.
type Fault struct {
	// Rate is the probability each request is affected; 0 (or ≥ 1) means
	// always.
	Rate float64
	// Status, when non-zero, answers with this status and an OpenAI error
	// body (type and code follow the status: 429 rate_limit_exceeded with
	// retry-after, ≥ 500 server_error, ...).
	Status int
	// RetryAfter sets retry-after and retry-after-ms on a Status answer.
	// Default for 429: 1s; other statuses send none.
	RetryAfter time.Duration
	// ErrorType and ErrorCode override the error body's type and code
	// (e.g. "insufficient_quota").
	ErrorType string
	ErrorCode string
	// Delay is waited before the response headers, on top of Latency.
	Delay time.Duration
	// Hang never answers: no status, no headers, until the client closes the
	// connection or the mock closes.
	Hang bool
	// BrokenJSON breaks the JSON of the reply: JSON content (and, with no JSON
	// wanted, the JSONContent sent in place of text) and tool arguments.
	// Variant 0 wraps it in prose, 1 truncates it.
	BrokenJSON bool
	// WrapToolArgs wraps tool call arguments differently. Variant 0: the
	// arguments are a JSON-encoded string holding the JSON (double-encoded);
	// 1: wrapped as {"arguments": {...}}; 2: inside ```json fences.
	WrapToolArgs bool
	// LegacyFunctionCall replies with message.function_call (finish_reason
	// "function_call") instead of tool_calls.
	LegacyFunctionCall bool
	// SlowChunks overrides the interval between stream chunks (to exceed
	// the gateway's idle timeout).
	SlowChunks time.Duration
	// Disconnect closes the TCP connection abruptly after DisconnectAfter
	// stream chunks (0: right after the headers). A non-zero DisconnectAfter
	// implies Disconnect. Non-streaming replies are cut after the headers.
	DisconnectAfter int
	Disconnect      bool
	// Tokens overrides completion_tokens in the reported usage (token
	// blow-up).
	Tokens int
	// Variant picks the form of BrokenJSON and WrapToolArgs (see them);
	// -1 rotates through the forms request by request.
	Variant int
	// Degrade answers worse (issue 16, the eval_drift drill): a text reply
	// becomes DegradedContent, valid but unhelpful, which Judge scores
	// lower.
	Degrade bool
	// Refuse answers a chat request with a refusal (see guardrailFault).
	Refuse bool
	// LeakPII makes a text answer carry personal data the request did not
	// hold: MockLeakedEmail and MockLeakedPhone.
	LeakPII bool
}

// active reports whether the fault hits this request, per Rate.
func (f Fault) active() bool {
	if f.Rate <= 0 || f.Rate >= 1 {
		return true
	}
	return rand.Float64() < f.Rate
}

func (f Fault) disconnects() bool { return f.Disconnect || f.DisconnectAfter > 0 }

// variant returns the form index in [0, n) for request seq.
func (f Fault) variant(seq int64, n int) int {
	if f.Variant < 0 {
		return int(seq % int64(n))
	}
	return f.Variant % n
}

// faultJSON is the wire form of Fault: snake_case, durations as strings.
type faultJSON struct {
	Rate               float64 `json:"rate,omitempty"`
	Status             int     `json:"status,omitempty"`
	RetryAfter         string  `json:"retry_after,omitempty"`
	ErrorType          string  `json:"error_type,omitempty"`
	ErrorCode          string  `json:"error_code,omitempty"`
	Delay              string  `json:"delay,omitempty"`
	Hang               bool    `json:"hang,omitempty"`
	BrokenJSON         bool    `json:"broken_json,omitempty"`
	WrapToolArgs       bool    `json:"wrap_tool_args,omitempty"`
	LegacyFunctionCall bool    `json:"legacy_function_call,omitempty"`
	SlowChunks         string  `json:"slow_chunks,omitempty"`
	DisconnectAfter    int     `json:"disconnect_after,omitempty"`
	Disconnect         bool    `json:"disconnect,omitempty"`
	Tokens             int     `json:"tokens,omitempty"`
	Variant            int     `json:"variant,omitempty"`
	Degrade            bool    `json:"degrade,omitempty"`
	Refuse             bool    `json:"refuse,omitempty"`
	LeakPII            bool    `json:"leak_pii,omitempty"`
}

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// MarshalJSON encodes f in the wire form of POST /mock/faults: snake_case
// names, durations as strings like "2s", zero fields omitted.
func (f Fault) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultJSON{
		Rate: f.Rate, Status: f.Status, RetryAfter: durString(f.RetryAfter),
		ErrorType: f.ErrorType, ErrorCode: f.ErrorCode, Delay: durString(f.Delay),
		Hang: f.Hang, BrokenJSON: f.BrokenJSON, WrapToolArgs: f.WrapToolArgs,
		LegacyFunctionCall: f.LegacyFunctionCall, SlowChunks: durString(f.SlowChunks),
		DisconnectAfter: f.DisconnectAfter, Disconnect: f.Disconnect, Tokens: f.Tokens,
		Variant: f.Variant, Degrade: f.Degrade, Refuse: f.Refuse, LeakPII: f.LeakPII,
	})
}

// UnmarshalJSON decodes the wire form written by MarshalJSON. Unknown
// fields and malformed durations are errors naming the field.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("decode fault: %w", err)
	}
	var errs []error
	dur := func(name, s string) time.Duration {
		if s == "" {
			return 0
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("fault.%s: %q is not a duration like \"2s\"", name, s))
		}
		return d
	}
	out := Fault{
		Rate: j.Rate, Status: j.Status, RetryAfter: dur("retry_after", j.RetryAfter),
		ErrorType: j.ErrorType, ErrorCode: j.ErrorCode, Delay: dur("delay", j.Delay),
		Hang: j.Hang, BrokenJSON: j.BrokenJSON, WrapToolArgs: j.WrapToolArgs,
		LegacyFunctionCall: j.LegacyFunctionCall, SlowChunks: dur("slow_chunks", j.SlowChunks),
		DisconnectAfter: j.DisconnectAfter, Disconnect: j.Disconnect, Tokens: j.Tokens,
		Variant: j.Variant, Degrade: j.Degrade, Refuse: j.Refuse, LeakPII: j.LeakPII,
	}
	if j.Status != 0 && (j.Status < 100 || j.Status > 599) {
		errs = append(errs, fmt.Errorf("fault.status: %d is not an HTTP status", j.Status))
	}
	if j.Rate < 0 || j.Rate > 1 {
		errs = append(errs, fmt.Errorf("fault.rate: %v is not in [0, 1]", j.Rate))
	}
	if j.DisconnectAfter < 0 || j.Tokens < 0 {
		errs = append(errs, errors.New("fault: disconnect_after and tokens must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	*f = out
	return nil
}

// errorShape returns the OpenAI error type, code and message for a status.
func errorShape(status int) (typ, code, msg string) {
	switch {
	case status == 401:
		return "invalid_request_error", "invalid_api_key", "Incorrect API key provided."
	case status == 403:
		return "invalid_request_error", "unsupported_country_region_territory", "Permission denied."
	case status == 404:
		return "invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."
	case status == 408:
		return "timeout", "", "Request timed out."
	case status == 429:
		return "requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 1s."
	case status == 503:
		return "server_error", "", "The server is overloaded or not ready yet."
	case status >= 500:
		return "server_error", "", "The server had an error while processing your request."
	default:
		return "invalid_request_error", "", "Injected mock error."
	}
}

// writeFaultStatus answers with f.Status and an OpenAI error body.
func writeFaultStatus(ctx *fasthttp.RequestCtx, f Fault) {
	typ, code, msg := errorShape(f.Status)
	if f.ErrorType != "" {
		typ = f.ErrorType
	}
	if f.ErrorCode != "" {
		code = f.ErrorCode
	}
	ra := f.RetryAfter
	if ra == 0 && f.Status == 429 {
		ra = time.Second
	}
	if ra > 0 {
		ctx.Response.Header.Set("retry-after", strconv.FormatInt(int64((ra+time.Second-1)/time.Second), 10))
		ctx.Response.Header.Set("retry-after-ms", strconv.FormatInt(ra.Milliseconds(), 10))
	}
	writeMockError(ctx, f.Status, msg, typ, code)
}

// hijack takes the connection over without sending a response; fn runs
// after the handler returns and the connection is closed when fn returns.
func (m *Mock) hijack(ctx *fasthttp.RequestCtx, fn func(c net.Conn)) {
	raw := ctx.Conn()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		fn(c)
		// Abrupt close: RST instead of FIN where the transport allows it.
		if tc, ok := raw.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
	})
}

// hangOn blocks until the peer closes c or the mock closes.
func (m *Mock) hangOn(c net.Conn) {
	var buf [512]byte
	for {
		select {
		case <-m.closed:
			return
		default:
		}
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := c.Read(buf[:])
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		return
	}
}

// rawHead writes an HTTP/1.1 response head on a hijacked connection.
func rawHead(c net.Conn, contentType, reqID string, contentLength int) error {
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\nContent-Type: ")
	b.WriteString(contentType)
	b.WriteString("\r\nx-request-id: ")
	b.WriteString(reqID)
	b.WriteString("\r\nopenai-processing-ms: 0\r\n")
	if contentLength >= 0 {
		b.WriteString("Content-Length: " + strconv.Itoa(contentLength) + "\r\n")
	} else {
		b.WriteString("Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n")
	}
	b.WriteString("\r\n")
	_, err := io.WriteString(c, b.String())
	return err
}

// serveControl serves the /mock/... control endpoints.
func (m *Mock) serveControl(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetContentType("application/json")
	switch path, method := string(ctx.Path()), string(ctx.Method()); {
	case path == "/mock/faults" && method == fasthttp.MethodPost:
		var req struct {
			Model string          `json:"model"`
			Fault json.RawMessage `json:"fault"`
		}
		dec := json.NewDecoder(bytes.NewReader(ctx.PostBody()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeMockError(ctx, 400, "decode fault request: "+err.Error(), "invalid_request_error", "")
			return
		}
		var f Fault
		if len(req.Fault) > 0 {
			if err := f.UnmarshalJSON(req.Fault); err != nil {
				writeMockError(ctx, 400, err.Error(), "invalid_request_error", "")
				return
			}
		}
		if req.Model == "" {
			req.Model = "*"
		}
		m.SetFault(req.Model, f)
		ctx.SetBodyString(`{"ok":true}`)
	case path == "/mock/faults" && method == fasthttp.MethodDelete:
		if model := string(ctx.QueryArgs().Peek("model")); model != "" {
			m.ClearFault(model)
		} else {
			m.ClearFaults()
		}
		ctx.SetBodyString(`{"ok":true}`)
	case path == "/mock/faults" && method == fasthttp.MethodGet:
		b, err := json.Marshal(m.Faults())
		if err != nil {
			writeMockError(ctx, 500, "encode faults: "+err.Error(), "server_error", "")
			return
		}
		ctx.SetBody(b)
	case path == "/mock/stats" && method == fasthttp.MethodGet:
		b, err := json.Marshal(MockStats{Requests: m.Requests(), Models: m.ModelCounts()})
		if err != nil {
			writeMockError(ctx, 500, "encode stats: "+err.Error(), "server_error", "")
			return
		}
		ctx.SetBody(b)
	default:
		writeMockError(ctx, 404, "unknown mock control endpoint", "invalid_request_error", "")
	}
}

// MockStats is the body of GET /mock/stats.
type MockStats struct {
	Requests int64            `json:"requests"`
	Models   map[string]int64 `json:"models"`
}

// MockControl drives a Mock in another process over its control endpoints.
// BaseURL is the mock's root ("http://127.0.0.1:9000"). Safe for concurrent
// use.
type MockControl struct {
	BaseURL string
	// HTTP is the client used; nil means a client with a 5 s timeout.
	HTTP *http.Client
}

func (c MockControl) do(ctx context.Context, method, path string, body []byte, out any) error {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("mock control %s %s: %w", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("mock control %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("mock control %s %s: read: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mock control %s %s: status %d: %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("mock control %s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

// SetFault is Mock.SetFault over HTTP (POST /mock/faults).
func (c MockControl) SetFault(ctx context.Context, model string, f Fault) error {
	fb, err := f.MarshalJSON()
	if err != nil {
		return fmt.Errorf("mock control: encode fault: %w", err)
	}
	body, err := json.Marshal(struct {
		Model string          `json:"model"`
		Fault json.RawMessage `json:"fault"`
	}{model, fb})
	if err != nil {
		return fmt.Errorf("mock control: encode fault: %w", err)
	}
	return c.do(ctx, http.MethodPost, "/mock/faults", body, nil)
}

// ClearFaults is Mock.ClearFaults over HTTP (DELETE /mock/faults).
func (c MockControl) ClearFaults(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/mock/faults", nil, nil)
}

// Stats reads GET /mock/stats.
func (c MockControl) Stats(ctx context.Context) (MockStats, error) {
	var s MockStats
	err := c.do(ctx, http.MethodGet, "/mock/stats", nil, &s)
	return s, err
}
