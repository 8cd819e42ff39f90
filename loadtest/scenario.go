package loadtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/configs"
)

// Options configure a scenario run.
type Options struct {
	// Binary is the path of the cairn binary: the gateway under test
	// (`serve`), the mock provider (`mock-provider`) and the reference proxy
	// (`loadtest-reference`) all run as child processes of it.
	Binary string
	// Out receives progress lines; nil discards them.
	Out io.Writer
	// Quick is the smoke profile: phases of a second or two and small
	// counts, for the test suite.
	Quick bool
	// WorkDir holds configs, data directories and child logs. Empty: a
	// temporary directory removed after a successful run (kept, and named
	// in the error, after a failure).
	WorkDir string
	// RedisServer is the redis-server binary (limits, soak). Empty: looked
	// up in PATH.
	RedisServer string
	// Seconds, when > 0, overrides the length of each measured phase (the
	// soak's whole duration).
	Seconds int
	// Rate, when > 0, overrides the fixed open-loop rate (requests/s).
	Rate float64
	// Streams, when > 0, overrides the number of concurrent streams.
	Streams int
	// Drill picks the drill scenario: DrillCanary (default) or
	// DrillPromptRevert.
	Drill string
	// Replicas is how many gateways the prompt-revert drill runs (sharing
	// one Redis when > 1). Default 1.
	Replicas int
	// Keys and Routes, when > 0, pad the overhead scenario's gateway config
	// to that many keys and glob routes (ManyKeysRoutesConfig), to measure
	// what many tenants and models cost per request.
	Keys, Routes int
	// BodySize runs the overhead scenario's body-size variant: 1 KB, 64 KB
	// and 1 MB requests and 256 KB responses through Cairn and the bare
	// hop, reporting CPU per KB.
	BodySize bool
	// Signal picks what the drill breaks on the canary (see DrillSignals).
	// Empty: contract_failure_rate.
	Signal string
}

// openMaxInFlight bounds the requests an open loop keeps in flight; one
// that finds it reached waits (counted Late, its wait in its latency).
const openMaxInFlight = 2048

// scenarioFunc runs one scenario, filling e.rep.
type scenarioFunc func(e *runEnv) error

// scenarioTable maps a scenario name to its runner.
func scenarioTable() map[string]scenarioFunc {
	return map[string]scenarioFunc{
		"overhead":     runOverhead,
		"streaming":    runStreaming,
		"idle-streams": runIdleStreams, // scenario_idle_streams.go (issue 15)
		"limits":       runLimits,
		"drill":        runDrills,
		"soak":         runSoak,
	}
}

// Scenarios returns the scenario names Run accepts, in a stable order.
func Scenarios() []string {
	return []string{"overhead", "streaming", "idle-streams", "limits", "drill", "soak"}
}

// Run runs one scenario on loopback: it starts the mock providers, the
// gateway(s) under test and the references as child processes of
// o.Binary, drives the load, and returns the report. Every child is
// stopped before Run returns, also on error or when ctx is canceled. On
// error the partial report (when there is one) is returned with it.
func Run(ctx context.Context, scenario string, o Options) (*Report, error) {
	fn, ok := scenarioTable()[scenario]
	if !ok {
		return nil, fmt.Errorf("loadtest: unknown scenario %q (want one of %s)", scenario, strings.Join(Scenarios(), ", "))
	}
	if o.Binary == "" {
		return nil, errors.New("loadtest: no cairn binary given")
	}
	bin, err := filepath.Abs(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("loadtest: binary path: %w", err)
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		return nil, fmt.Errorf("loadtest: cairn binary %s not found", bin)
	}
	o.Binary = bin
	if o.Out == nil {
		o.Out = io.Discard
	}
	dir, cleanup, err := workDir(o.WorkDir, scenario)
	if err != nil {
		return nil, err
	}
	e := &runEnv{ctx: ctx, o: o, dir: dir, procs: newProcGroup(dir), rep: newReport(ctx, scenario, o)}
	if l := loadAvg1(); finite(l) {
		e.rep.Params["load_avg_1m_before"] = l
	}
	start := time.Now()
	err = func() error {
		defer e.procs.closeAll()
		return fn(e)
	}()
	e.rep.Elapsed = time.Since(start).Seconds()
	if l := loadAvg1(); finite(l) {
		e.rep.Params["load_avg_1m_after"] = l
		if l > float64(e.rep.Machine.CPUs) {
			e.rep.note("the 1-minute load average was %.1f on %d CPUs at the end: other work shared the machine, so tails are noisy", l, e.rep.Machine.CPUs)
		}
	}
	if err != nil {
		return e.rep, fmt.Errorf("loadtest %s: %w (logs and configs in %s)", scenario, err, dir)
	}
	cleanup()
	return e.rep, nil
}

// workDir returns the run's directory and a cleanup that removes it when
// it was created here.
func workDir(base, scenario string) (string, func(), error) {
	if base != "" {
		dir := filepath.Join(base, scenario)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return "", nil, fmt.Errorf("loadtest: work dir: %w", err)
		}
		return dir, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "cairn-loadtest-"+scenario+"-")
	if err != nil {
		return "", nil, fmt.Errorf("loadtest: work dir: %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// runEnv is one run's context: options, work directory, children and the
// report being filled. Used by one scenario goroutine.
type runEnv struct {
	ctx   context.Context
	o     Options
	dir   string
	procs *procGroup
	rep   *Report

	mockFlagsOnce sync.Once
	mockHasChunks bool
}

// progress writes one progress line ("overhead: cairn closed loop …").
func (e *runEnv) progress(format string, a ...any) {
	fmt.Fprintf(e.o.Out, "%s: %s\n", e.rep.Scenario, fmt.Sprintf(format, a...))
}

// phase returns the length of a measured phase: Seconds when set, else the
// quick or full default.
func (e *runEnv) phase(full, quick time.Duration) time.Duration {
	if e.o.Seconds > 0 {
		return time.Duration(e.o.Seconds) * time.Second
	}
	if e.o.Quick {
		return quick
	}
	return full
}

// pick returns quick or full by profile.
func pick[T any](e *runEnv, full, quick T) T {
	if e.o.Quick {
		return quick
	}
	return full
}

// rate returns the open-loop rate: Options.Rate when set, else full/quick.
func (e *runEnv) rate(full, quick float64) float64 {
	if e.o.Rate > 0 {
		return e.o.Rate
	}
	return pick(e, full, quick)
}

// mockSpec is how a mock provider child is started.
type mockSpec struct {
	name          string
	latency       time.Duration
	chunkInterval time.Duration
	chunks        int // 0: the mock's default
	prefix        string
	replyBytes    int // > 0: json_object replies padded to about this size
}

// startMock starts `cairn mock-provider` and waits for its control API.
func (e *runEnv) startMock(s mockSpec) (string, error) {
	args := []string{"mock-provider", "--listen", anyLoopback,
		"--latency", s.latency.String(), "--chunk-interval", s.chunkInterval.String()}
	if s.prefix != "" {
		args = append(args, "--request-id-prefix", s.prefix)
	}
	if s.replyBytes > 0 {
		args = append(args, "--json-reply-bytes", strconv.Itoa(s.replyBytes))
	}
	if s.chunks > 0 {
		if e.mockSupportsChunks() {
			args = append(args, "--chunks", strconv.Itoa(s.chunks))
		} else {
			e.rep.note("the mock provider has no --chunks flag; streams use its default piece count")
		}
	}
	c, a, err := e.procs.startReady(e.ctx, s.name, e.o.Binary, args, nil)
	if err != nil {
		return "", err
	}
	if err := c.waitReady(e.ctx, httpReady("http://"+a.Listen+"/mock/stats")); err != nil {
		return "", err
	}
	return a.Listen, nil
}

// mockSupportsChunks asks `cairn mock-provider -h` whether --chunks exists.
func (e *runEnv) mockSupportsChunks() bool {
	e.mockFlagsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, e.o.Binary, "mock-provider", "-h").CombinedOutput()
		e.mockHasChunks = strings.Contains(string(out), "-chunks")
	})
	return e.mockHasChunks
}

// startReference starts `cairn loadtest-reference` in front of upstream.
func (e *runEnv) startReference(name, upstream string) (string, *child, error) {
	c, a, err := e.procs.startReady(e.ctx, name, e.o.Binary, []string{"loadtest-reference", "--listen", anyLoopback, "--upstream", upstream}, nil)
	if err != nil {
		return "", nil, err
	}
	return a.Listen, c, nil
}

// gateway is one `cairn serve` child.
type gateway struct {
	child      *child
	api, admin string
	config     string
}

// startGateway writes cfg (listen addresses port 0) to DIR/name.yaml,
// checks it with configs.Load, starts `cairn serve`, reads the addresses
// it bound and waits for /readyz.
func (e *runEnv) startGateway(name string, cfg configs.Config) (*gateway, error) {
	cfg.Listen, cfg.AdminListen = anyLoopback, anyLoopback
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(e.dir, name+"-data")
	}
	b, err := MarshalConfig(&cfg)
	if err != nil {
		return nil, fmt.Errorf("encode %s config: %w", name, err)
	}
	b = append([]byte("# written by cairn loadtest "+e.rep.Scenario+"\n"), b...)
	if _, err := configs.Load(b, configs.Options{Dir: e.dir}); err != nil {
		return nil, fmt.Errorf("%s config is invalid: %w", name, err)
	}
	path := filepath.Join(e.dir, name+".yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("write %s config: %w", name, err)
	}
	c, a, err := e.procs.startReady(e.ctx, name, e.o.Binary, []string{"serve", "--config", path}, nil)
	if err != nil {
		return nil, err
	}
	if err := c.waitReady(e.ctx, httpReady("http://"+a.AdminListen+"/readyz")); err != nil {
		return nil, err
	}
	return &gateway{child: c, api: a.Listen, admin: a.AdminListen, config: path}, nil
}

// alive fails when a child has died, naming its log.
func alive(cs ...*child) error {
	for _, c := range cs {
		if c != nil && c.exited() {
			return c.failure("died during the run")
		}
	}
	return nil
}

// writeSchema writes the contract schema the benchmarks use: the mock's
// JSON reply {"answer":"ok","confidence":0.9} satisfies it.
func (e *runEnv) writeSchema() (string, error) {
	const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["answer"],
  "properties": {
    "answer": {"type": "string", "minLength": 1},
    "confidence": {"type": "number", "minimum": 0, "maximum": 1}
  }
}
`
	name := "answer.schema.json"
	if err := os.WriteFile(filepath.Join(e.dir, name), []byte(schema), 0o600); err != nil {
		return "", fmt.Errorf("write schema: %w", err)
	}
	return name, nil
}

// benchKey is a gateway key the generator presents: the config holds only
// its digest.
func benchKey(name string, rpm int) (configs.Key, string) {
	secret := "sk-cairn-loadtest-" + name
	sum := sha256.Sum256([]byte(secret))
	return configs.Key{Name: name, KeySHA256: hex.EncodeToString(sum[:]), RPM: rpm}, secret
}

func intp(n int) *int { return &n }

// benchBody returns a realistic non-streaming or streaming chat request
// (system + user message, JSON mode, a user ID) of about 600 bytes.
func benchBody(model, user string, stream bool) []byte {
	var b []byte
	b = append(b, `{"model":`...)
	b = strconv.AppendQuote(b, model)
	b = append(b, `,"messages":[{"role":"system","content":"You are a support assistant for an online store. Answer in JSON with the fields answer and confidence. Be brief and precise; never invent order numbers."},`...)
	b = append(b, `{"role":"user","content":"Hello! I ordered a pair of running shoes last Tuesday and the tracking page has not changed since Thursday. Can you tell me whether the parcel is lost, and what my options are for a refund or a replacement?"}],`...)
	b = append(b, `"response_format":{"type":"json_object"},"temperature":0.2,"max_tokens":256,"user":`...)
	b = strconv.AppendQuote(b, user)
	if stream {
		b = append(b, `,"stream":true,"stream_options":{"include_usage":true}`...)
	}
	return append(b, '}')
}

// chatOutcome is what the generator keeps of one response.
type chatOutcome struct {
	status   int
	contract string // x-cairn-contract
	cohort   string // x-cairn-cohort
	retry    bool   // a retry-after header was present
	degraded bool   // judge said the 200 answer is degraded
}

// chatClient sends non-streaming chat requests over fasthttp keep-alive
// connections to one address. Safe for concurrent use.
type chatClient struct {
	hc      *fasthttp.HostClient
	url     string
	auth    string
	timeout time.Duration
	// judge, when set, reads every 200 answer and says whether it is
	// degraded (a refusal, a leak).
	judge func(body []byte) bool
}

func newChatClient(addr, auth string, conns int) *chatClient {
	return &chatClient{
		hc: &fasthttp.HostClient{
			Addr:                     addr,
			MaxConns:                 max(conns, 1),
			MaxIdleConnDuration:      time.Minute,
			ReadTimeout:              30 * time.Second,
			WriteTimeout:             10 * time.Second,
			MaxConnWaitTimeout:       30 * time.Second,
			NoDefaultUserAgentHeader: true,
			ReadBufferSize:           16 << 10,
			// LIFO reuses the most recent connection, so the ones a
			// stall opened go idle and close after MaxIdleConnDuration
			// (FIFO would keep cycling them all, forever).
			ConnPoolStrategy: fasthttp.LIFO,
		},
		url:     "http://" + addr + "/v1/chat/completions",
		auth:    auth,
		timeout: 30 * time.Second,
	}
}

// do POSTs body to the chat endpoint and reads the answer into resp, by
// the client's timeout or ctx's deadline, whichever comes first.
func (c *chatClient) do(ctx context.Context, body []byte, resp *fasthttp.Response) error {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI(c.url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if c.auth != "" {
		req.Header.Set("Authorization", "Bearer "+c.auth)
	}
	req.SetBodyRaw(body)
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.hc.DoDeadline(req, resp, deadline); err != nil {
		return fmt.Errorf("post: %w", err)
	}
	return nil
}

// post sends body and reads the whole response; the body is checked to be
// a JSON chat completion when the status is 200.
func (c *chatClient) post(ctx context.Context, body []byte) (chatOutcome, error) {
	var out chatOutcome
	if err := ctx.Err(); err != nil {
		return out, err
	}
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := c.do(ctx, body, resp); err != nil {
		return out, err
	}
	out.status = resp.StatusCode()
	out.contract = string(resp.Header.Peek("x-cairn-contract"))
	out.cohort = string(resp.Header.Peek("x-cairn-cohort"))
	out.retry = len(resp.Header.Peek("retry-after")) > 0
	if out.status == fasthttp.StatusOK && !hasChoices(resp.Body()) {
		return out, fmt.Errorf("status 200 without a chat completion body (%d bytes)", len(resp.Body()))
	}
	if c.judge != nil && out.status == fasthttp.StatusOK {
		out.degraded = c.judge(resp.Body())
	}
	return out, nil
}

// hasChoices is a cheap check that b looks like a chat completion.
func hasChoices(b []byte) bool {
	return len(b) > 0 && b[0] == '{' && strings.Contains(string(b), `"choices"`)
}

// statusError is a non-200 response counted as a failed request.
func statusError(o chatOutcome) error {
	return fmt.Errorf("status %d", o.status)
}

// median returns the median of xs (0 when empty).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// mib converts bytes to MiB.
func mib(b int64) float64 { return float64(b) / (1 << 20) }

// latencySeries turns a run's timeline into p50 and p99 series (ms); empty
// windows are skipped.
func latencySeries(name string, tl []Window) (p50, p99 Series) {
	p50.Name, p99.Name = name+" p50", name+" p99"
	p50.Group, p99.Group = name, name
	p50.Dashed = true
	for _, w := range tl {
		if w.Latency == nil || w.Latency.Count() == 0 {
			continue
		}
		t := w.Start.Seconds() + 0.5
		p50.Points = append(p50.Points, Point{T: t, V: ms(w.Latency.Quantile(0.5))})
		p99.Points = append(p99.Points, Point{T: t, V: ms(w.Latency.Quantile(0.99))})
	}
	return p50, p99
}

// sleepCtx waits d or until ctx ends, reporting whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// joinSamples joins error samples for a note, at most 4.
func joinSamples(s []string) string {
	if len(s) > 4 {
		s = s[:4]
	}
	return strings.Join(s, "; ")
}

// nan marks a figure that was not measured; tables drop it.
func nan() float64 { return math.NaN() }

// roundsPhrase says how the figures of a table were combined.
func roundsPhrase(n int) string {
	if n == 1 {
		return "one round"
	}
	return fmt.Sprintf("medians of %d rounds", n)
}
