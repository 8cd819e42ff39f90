// Package loadtest holds Cairn's OpenAI-compatible mock provider (with fault
// injection) and the load-generator building blocks used by the benchmarks
// and drills. It treats the gateway as a black box over HTTP.
package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
)

// Defaults of MockOptions.
const (
	DefaultMockChunks      = 8
	DefaultMockContent     = "Hello from the mock provider. This reply is a short sentence."
	DefaultMockJSONContent = `{"answer":"ok","confidence":0.9}`
	DefaultMockPrefix      = "mock"
	defaultMockModel       = "mock-model"
	mockMaxBody            = 64 << 20
	mockShutdownWait       = 3 * time.Second
	maxCachedSchema        = 64 << 10 // larger schemas are generated every time
	maxCachedInstances     = 256
)

// MockOptions configures a Mock. The zero value is usable: every zero field
// takes the default stated on it.
type MockOptions struct {
	// Latency is waited before the response headers (non-streaming) or
	// before the first chunk (streaming). Default 0.
	Latency time.Duration
	// ChunkInterval is waited between stream content chunks. Default 0.
	ChunkInterval time.Duration
	// Chunks is the number of pieces a streamed reply (content or tool
	// arguments) is split into. Default 8; a reply shorter than Chunks bytes
	// gets one piece per byte.
	Chunks int
	// Content is the reply text when no JSON and no tool call is wanted.
	// Default DefaultMockContent.
	Content string
	// JSONContent is the reply when response_format is json_object, or
	// json_schema without a schema. Default DefaultMockJSONContent. A
	// json_schema with a schema gets an instance generated from the schema.
	JSONContent string
	// RequestIDPrefix prefixes every x-request-id ("<prefix>-<n>"), the
	// completion IDs and tool call IDs. Default "mock-" and six random hex
	// digits drawn per Mock, so two mocks with the default never hand out
	// the same provider request ID.
	RequestIDPrefix string
	// APIKey, when set, is required as "Authorization: Bearer <APIKey>";
	// other requests get an OpenAI-shaped 401. Default "": any key passes.
	APIKey string
	// Models are listed by GET /v1/models in addition to every model the mock
	// has been asked for. Default ["mock-model"].
	Models []string
}

func (o MockOptions) withDefaults() MockOptions {
	if o.Chunks <= 0 {
		o.Chunks = DefaultMockChunks
	}
	if o.Content == "" {
		o.Content = DefaultMockContent
	}
	if o.JSONContent == "" {
		o.JSONContent = DefaultMockJSONContent
	}
	if o.RequestIDPrefix == "" {
		var b [3]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		o.RequestIDPrefix = DefaultMockPrefix + "-" + hex.EncodeToString(b[:])
	}
	if len(o.Models) == 0 {
		o.Models = []string{defaultMockModel}
	}
	return o
}

// Mock is an OpenAI-compatible fake upstream: chat completions (plain,
// streamed, tool calls, JSON modes), embeddings and the model list, with
// injectable faults and runtime control over HTTP (/mock/faults,
// /mock/stats). It lives until Close; all methods are safe for concurrent use.
type Mock struct {
	opts MockOptions
	srv  *fasthttp.Server

	closed    chan struct{}
	closeOnce sync.Once

	seq      atomic.Int64 // request sequence, for IDs
	requests atomic.Int64 // API requests seen
	models   sync.Map     // model name → *mockModel
	last     atomic.Pointer[capturedRequest]

	instances sync.Map     // schema text → generated instance, see instanceText
	instanceN atomic.Int64 // entries in instances

	resps mockResponses // created responses (mock_responses.go)

	faultsMu sync.Mutex                       // serialises writers of faults
	faults   atomic.Pointer[map[string]Fault] // copy-on-write; never mutated once stored
}

// mockModel holds the per-model counters.
type mockModel struct {
	requests atomic.Int64
	last     atomic.Pointer[capturedRequest]
}

// NewMock returns a Mock configured by o. It serves nothing until Serve or
// Start; Handler may also be mounted on any fasthttp server.
func NewMock(o MockOptions) *Mock {
	m := &Mock{opts: o.withDefaults(), closed: make(chan struct{})}
	empty := map[string]Fault{}
	m.faults.Store(&empty)
	m.srv = &fasthttp.Server{
		Handler:               m.Handler,
		Name:                  "cairn-mock",
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		MaxRequestBodySize:    mockMaxBody,
		ReadBufferSize:        32 << 10,
		CloseOnShutdown:       true,
		IdleTimeout:           2 * time.Minute,
	}
	return m
}

// RequestIDPrefix returns the prefix of the mock's request IDs, with its
// default applied.
func (m *Mock) RequestIDPrefix() string { return m.opts.RequestIDPrefix }

// Serve serves the mock on ln until Close. It returns nil after Close.
func (m *Mock) Serve(ln net.Listener) error {
	select {
	case <-m.closed:
		ln.Close()
		return nil
	default:
	}
	err := m.srv.Serve(ln)
	select {
	case <-m.closed:
		return nil
	default:
	}
	if err != nil {
		return fmt.Errorf("mock serve: %w", err)
	}
	return nil
}

// Start listens on addr ("127.0.0.1:0" picks a free port), serves in a
// goroutine that ends with Close, and returns the bound address.
func (m *Mock) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("mock listen %s: %w", addr, err)
	}
	go m.Serve(ln) //nolint:errcheck // Serve's only errors are listener failures after Close
	return ln.Addr().String(), nil
}

// Close stops the listeners, releases hanging and slow requests, and waits
// (bounded) for open connections to finish. It is idempotent.
func (m *Mock) Close() error {
	m.closeOnce.Do(func() { close(m.closed) })
	ctx, cancel := context.WithTimeout(context.Background(), mockShutdownWait)
	defer cancel()
	if err := m.srv.ShutdownWithContext(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("mock shutdown: %w", err)
	}
	return nil
}

// RunMockProvider serves a Mock on addr until stop is closed (the
// `cairn mock-provider --listen ADDR` subcommand).
func RunMockProvider(addr string, o MockOptions, stop <-chan struct{}) error {
	m := NewMock(o)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mock provider listen %s: %w", addr, err)
	}
	errc := make(chan error, 1)
	go func() { errc <- m.Serve(ln) }()
	select {
	case <-stop:
		return m.Close()
	case err := <-errc:
		m.Close()
		if err != nil {
			return fmt.Errorf("mock provider %s: %w", addr, err)
		}
		return nil
	}
}

// SetFault makes requests for model misbehave as f describes; model "*"
// applies to every model, and a model-specific fault wins over "*" (so a
// zero Fault for a model keeps it healthy while "*" is faulty).
func (m *Mock) SetFault(model string, f Fault) {
	m.editFaults(func(fs map[string]Fault) { fs[model] = f })
}

// ClearFault removes the fault set for model (which may be "*").
func (m *Mock) ClearFault(model string) {
	m.editFaults(func(fs map[string]Fault) { delete(fs, model) })
}

// editFaults applies edit to a copy of the fault table and publishes it.
func (m *Mock) editFaults(edit func(map[string]Fault)) {
	m.faultsMu.Lock()
	defer m.faultsMu.Unlock()
	next := make(map[string]Fault, len(*m.faults.Load())+1)
	for k, v := range *m.faults.Load() {
		next[k] = v
	}
	edit(next)
	m.faults.Store(&next)
}

// ClearFaults removes every fault.
func (m *Mock) ClearFaults() {
	m.faultsMu.Lock()
	defer m.faultsMu.Unlock()
	empty := map[string]Fault{}
	m.faults.Store(&empty)
}

// Faults returns a copy of the faults in force, by model.
func (m *Mock) Faults() map[string]Fault {
	out := map[string]Fault{}
	for k, v := range *m.faults.Load() {
		out[k] = v
	}
	return out
}

// faultFor returns the fault in force for model, if any.
func (m *Mock) faultFor(model string) (Fault, bool) {
	fs := *m.faults.Load()
	if len(fs) == 0 {
		return Fault{}, false
	}
	if f, ok := fs[model]; ok {
		return f, true
	}
	f, ok := fs["*"]
	return f, ok
}

// Requests returns how many API requests (/v1/...) the mock has received,
// including ones it answered with a fault or an error.
func (m *Mock) Requests() int64 { return m.requests.Load() }

// RequestsFor returns how many chat or embedding requests named model.
func (m *Mock) RequestsFor(model string) int64 {
	if v, ok := m.models.Load(model); ok {
		return v.(*mockModel).requests.Load()
	}
	return 0
}

// ModelCounts returns the request count per model name.
func (m *Mock) ModelCounts() map[string]int64 {
	out := map[string]int64{}
	m.models.Range(func(k, v any) bool {
		out[k.(string)] = v.(*mockModel).requests.Load()
		return true
	})
	return out
}

// LastRequest returns copies of the headers and body of the last API
// request. Each header appears under its canonical name ("Authorization",
// "Traceparent") and its lowercase name ("authorization"); repeated headers
// keep the last value. Both are nil before the first request.
func (m *Mock) LastRequest() (headers map[string]string, body []byte) {
	return m.last.Load().parts()
}

// LastRequestFor is LastRequest restricted to requests that named model.
func (m *Mock) LastRequestFor(model string) (headers map[string]string, body []byte) {
	if v, ok := m.models.Load(model); ok {
		return v.(*mockModel).last.Load().parts()
	}
	return nil, nil
}

// LastPath returns the path of the last API request ("" before the first).
func (m *Mock) LastPath() string {
	if c := m.last.Load(); c != nil {
		return c.path
	}
	return ""
}

// capturedRequest is an owned copy of one request, parsed lazily.
type capturedRequest struct {
	path    string
	headers []byte // "Name: value\r\n" lines
	body    []byte
}

func (c *capturedRequest) parts() (map[string]string, []byte) {
	if c == nil {
		return nil, nil
	}
	h := map[string]string{}
	for line := range strings.SplitSeq(string(c.headers), "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		h[k] = v
		h[strings.ToLower(k)] = v
	}
	return h, slices.Clone(c.body)
}

// capture records the request as the last one (overall and for its model)
// and bumps the counters. It copies everything it keeps.
func (m *Mock) capture(ctx *fasthttp.RequestCtx, model string) {
	m.requests.Add(1)
	c := &capturedRequest{path: string(ctx.Path()), body: slices.Clone(ctx.PostBody())}
	var hb []byte
	for k, v := range ctx.Request.Header.All() {
		hb = append(hb, k...)
		hb = append(hb, ": "...)
		hb = append(hb, v...)
		hb = append(hb, "\r\n"...)
	}
	c.headers = hb
	m.last.Store(c)
	if model == "" {
		return
	}
	v, ok := m.models.Load(model)
	if !ok {
		v, _ = m.models.LoadOrStore(model, &mockModel{})
	}
	mm := v.(*mockModel)
	mm.requests.Add(1)
	mm.last.Store(c)
}

// sleep waits d, returning false early if the mock closes.
func (m *Mock) sleep(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-m.closed:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-m.closed:
		return false
	}
}

// Handler serves POST /v1/chat/completions, POST /v1/completions, POST
// /v1/embeddings, POST /v1/responses and /v1/responses/{id}, GET
// /v1/models[/{id}] (the /v1 prefix is optional), Anthropic's POST
// /v1/messages, Azure OpenAI's POST /openai/... and the control
// endpoints POST|GET|DELETE /mock/faults and GET /mock/stats. It may be
// mounted on any fasthttp server; it keeps nothing from ctx after returning.
func (m *Mock) Handler(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	path := ctx.Path()
	if len(path) >= 5 && string(path[:5]) == "/mock" {
		m.serveControl(ctx)
		return
	}
	seq := m.seq.Add(1)
	reqID := m.opts.RequestIDPrefix + "-" + strconv.FormatInt(seq, 10)
	ctx.Response.Header.Set("x-request-id", reqID)
	if len(path) >= 3 && string(path[:3]) == "/v1" {
		path = path[3:]
	}
	method := string(ctx.Method())
	switch {
	case string(path) == "/chat/completions":
		if method != fasthttp.MethodPost {
			m.capture(ctx, "")
			writeMockError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed", "invalid_request_error", "")
			return
		}
		m.serveChat(ctx, start, seq)
	case string(path) == "/embeddings":
		if method != fasthttp.MethodPost {
			m.capture(ctx, "")
			writeMockError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed", "invalid_request_error", "")
			return
		}
		m.serveEmbeddings(ctx, start, seq)
	case string(path) == "/completions":
		if method != fasthttp.MethodPost {
			m.capture(ctx, "")
			writeMockError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed", "invalid_request_error", "")
			return
		}
		m.serveCompletions(ctx, start, seq)
	case string(path) == "/responses" || strings.HasPrefix(string(path), "/responses/"):
		m.serveResponses(ctx, start, seq, string(path))
	case string(path) == "/messages" && method == fasthttp.MethodPost:
		m.serveMessages(ctx, start, seq) // Anthropic (mock_anthropic.go)
	case strings.HasPrefix(string(ctx.Path()), "/openai/") && method == fasthttp.MethodPost:
		m.serveAzure(ctx, start, seq, strings.TrimPrefix(string(ctx.Path()), "/openai")) // Azure (mock_azure.go)
	case string(path) == "/models" || strings.HasPrefix(string(path), "/models/"):
		m.capture(ctx, "")
		if !m.authorized(ctx) {
			return
		}
		m.serveModels(ctx, strings.TrimPrefix(strings.TrimPrefix(string(path), "/models"), "/"))
	default:
		m.capture(ctx, "")
		writeMockError(ctx, fasthttp.StatusNotFound, "unknown path "+strconv.Quote(string(ctx.Path())), "invalid_request_error", "unknown_url")
	}
}

// authorized enforces MockOptions.APIKey, writing a 401 when it fails.
func (m *Mock) authorized(ctx *fasthttp.RequestCtx) bool {
	if m.opts.APIKey == "" || strings.HasPrefix(string(ctx.Path()), "/openai/") {
		return true // Azure's api-key was checked by serveAzure
	}
	if string(ctx.Request.Header.Peek("Authorization")) == "Bearer "+m.opts.APIKey {
		return true
	}
	writeMockError(ctx, fasthttp.StatusUnauthorized, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
	return false
}

// setProcessingMS sets openai-processing-ms to the time since start.
func setProcessingMS(ctx *fasthttp.RequestCtx, start time.Time) {
	ctx.Response.Header.Set("openai-processing-ms", strconv.FormatInt(time.Since(start).Milliseconds(), 10))
}

// writeMockError writes an OpenAI-shaped error; code "" is sent as null.
func writeMockError(ctx *fasthttp.RequestCtx, status int, msg, typ, code string) {
	b := make([]byte, 0, 128+len(msg))
	b = append(b, `{"error":{"message":`...)
	b = appendJSONString(b, msg)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, typ)
	b = append(b, `,"param":null,"code":`...)
	if code == "" {
		b = append(b, "null"...)
	} else {
		b = appendJSONString(b, code)
	}
	b = append(b, "}}"...)
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetStatusCode(status)
	ctx.SetBody(b)
}

// modelList returns the models to list: configured plus seen, sorted.
func (m *Mock) modelList() []string {
	names := slices.Clone(m.opts.Models)
	m.models.Range(func(k, _ any) bool {
		names = append(names, k.(string))
		return true
	})
	slices.Sort(names)
	return slices.Compact(names)
}

func (m *Mock) serveModels(ctx *fasthttp.RequestCtx, id string) {
	appendModel := func(b []byte, name string) []byte {
		b = append(b, `{"id":`...)
		b = appendJSONString(b, name)
		return append(b, `,"object":"model","created":1700000000,"owned_by":"cairn-mock"}`...)
	}
	ctx.Response.Header.SetContentType("application/json")
	if id != "" {
		ctx.SetBody(appendModel(nil, id))
		return
	}
	b := []byte(`{"object":"list","data":[`)
	for i, name := range m.modelList() {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendModel(b, name)
	}
	ctx.SetBody(append(b, "]}"...))
}

// requestModel reads and validates the request's JSON body and model,
// writing a 400 when either is bad.
func requestModel(ctx *fasthttp.RequestCtx) (string, bool) {
	body := ctx.PostBody()
	if !gjson.ValidBytes(body) {
		writeMockError(ctx, fasthttp.StatusBadRequest, "We could not parse the JSON body of your request.", "invalid_request_error", "")
		return "", false
	}
	mr := gjson.GetBytes(body, "model")
	if mr.Type != gjson.String || mr.Str == "" {
		writeMockError(ctx, fasthttp.StatusBadRequest, "you must provide a model parameter", "invalid_request_error", "")
		return "", false
	}
	return mr.Str, true
}

// approxTokens estimates tokens as bytes/4, at least 1.
func approxTokens(n int) int {
	return max(1, n/4)
}
