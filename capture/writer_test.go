package capture

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/internal/redistest"
)

// newTestWriter starts a Writer on dir and closes it at the end of the
// test (a second Close is harmless).
func newTestWriter(t *testing.T, o WriterOptions) *Writer {
	t.Helper()
	if o.Masker == nil {
		o.Masker = testMasker(t)
	}
	w, err := NewWriter(o)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

func closeWriter(t *testing.T, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// testRecord is a successful chat request with bodies.
func testRecord(i int) *Record {
	return &Record{
		GatewayRequestID:  fmt.Sprintf("gw-%04d", i),
		ProviderRequestID: fmt.Sprintf("req_prov_%04d", i),
		ClientRequestID:   fmt.Sprintf("client-%04d", i),
		ReceivedAt:        time.Date(2026, 11, 24, 10, 0, 0, i*1000, time.UTC),
		Endpoint:          "chat.completions",
		Route:             "support-bot", Cohort: "canary", Provider: "openai", Model: "gpt-4o-mini",
		Status: 200, Outcome: OutcomeOK, LatencyMS: 120, Usage: Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15},
		Contract: Verdict{Verdict: VerdictPass},
		Raw: &RawBodies{
			RequestBody:  []byte(`{"model":"support-bot","messages":[{"role":"user","content":"hello"}]}`),
			ResponseBody: []byte(`{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi there"},"finish_reason":"stop"}]}`),
		},
	}
}

// readRecords reads every record in the capture files under dataDir,
// oldest first.
func readRecords(t *testing.T, dataDir string) []Record {
	t.Helper()
	names, err := listFiles(filepath.Join(dataDir, captureSubdir))
	if err != nil {
		t.Fatalf("listFiles: %v", err)
	}
	var out []Record
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var r Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: bad line %q: %v", n, sc.Text(), err)
			}
			out = append(out, r)
		}
		f.Close()
	}
	return out
}

func TestWriterRecordsAndLookup(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir})
	var mu sync.Mutex
	var seen []string
	w.Subscribe(func(r *Record) {
		mu.Lock()
		seen = append(seen, r.GatewayRequestID)
		mu.Unlock()
		if r.Raw != nil {
			t.Errorf("observer got %s with Raw still set", r.GatewayRequestID)
		}
	})
	w.Start()
	const n = 300
	for i := range n {
		w.Enqueue(testRecord(i))
	}
	ctx := context.Background()
	// Lookup from memory by each ID once the writer has seen the last one.
	waitFor(t, func() bool { _, err := w.Lookup(ctx, fmt.Sprintf("gw-%04d", n-1)); return err == nil })
	for _, id := range []string{"gw-0007", "req_prov_0007", "client-0007"} {
		r, err := w.Lookup(ctx, id)
		if err != nil || r.GatewayRequestID != "gw-0007" {
			t.Errorf("Lookup(%q) = %v, %v; want gw-0007", id, r, err)
		}
	}
	if _, err := w.Lookup(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(nope) error = %v; want ErrNotFound", err)
	}
	closeWriter(t, w)

	recs := readRecords(t, dir)
	if len(recs) != n {
		t.Fatalf("files hold %d records; want %d", len(recs), n)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("gw-%04d", i); r.GatewayRequestID != want {
			t.Fatalf("record %d is %s; want %s (in order)", i, r.GatewayRequestID, want)
		}
	}
	r := recs[0]
	if !r.BodySampled || string(r.Request) != `[{"role":"user","content":"hello"}]` ||
		string(r.Response) != `{"content":"hi there","finish_reason":"stop"}` {
		t.Errorf("record 0 bodies = sampled %v, request %s, response %s", r.BodySampled, r.Request, r.Response)
	}
	if len(seen) != n || seen[0] != "gw-0000" || seen[n-1] != fmt.Sprintf("gw-%04d", n-1) {
		t.Errorf("observers saw %d records; want %d in order", len(seen), n)
	}

	// A new Writer on the same directory finds them in the files.
	w2 := newTestWriter(t, WriterOptions{DataDir: dir, Capture: configs.Capture{Memory: 10}})
	w2.Start()
	for _, id := range []string{"gw-0003", "req_prov_0003", "client-0003"} {
		r, err := w2.Lookup(ctx, id)
		if err != nil || r.GatewayRequestID != "gw-0003" {
			t.Errorf("after restart Lookup(%q) = %v, %v; want gw-0003", id, r, err)
		}
	}
	if r, err := FindInDir(dir, "client-0150"); err != nil || r.GatewayRequestID != "gw-0150" {
		t.Errorf("FindInDir(client-0150) = %v, %v; want gw-0150", r, err)
	}
	if _, err := FindInDir(dir, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FindInDir(missing) error = %v; want ErrNotFound", err)
	}
	if _, err := FindInDir(t.TempDir(), "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FindInDir(empty dir) error = %v; want ErrNotFound", err)
	}
	// The restarted writer appends to today's last file after the old lines.
	w2.Enqueue(testRecord(n))
	closeWriter(t, w2)
	if recs := readRecords(t, dir); len(recs) != n+1 {
		t.Errorf("after restart files hold %d records; want %d", len(recs), n+1)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWriterRecent(t *testing.T) {
	w := newTestWriter(t, WriterOptions{DataDir: t.TempDir(), Capture: configs.Capture{Memory: 50}})
	w.Start()
	for i := range 100 {
		r := testRecord(i)
		if i%2 == 1 {
			r.Outcome, r.Status = OutcomeUpstreamError, 502
		}
		w.Enqueue(r)
	}
	closeWriter(t, w)
	got := w.Recent(5, func(r *Record) bool { return r.Failed() })
	var ids []string
	for _, r := range got {
		ids = append(ids, r.GatewayRequestID)
	}
	if want := "gw-0099 gw-0097 gw-0095 gw-0093 gw-0091"; strings.Join(ids, " ") != want {
		t.Errorf("Recent(5, failed) = %v; want %s", ids, want)
	}
	if all := w.Recent(1000, nil); len(all) != 50 {
		t.Errorf("Recent(1000, nil) returned %d; want the memory size 50", len(all))
	}
	// Evicted records are no longer indexed in memory but found in files.
	if _, ok := func() (*Record, bool) { r := w.mem.lookup(IDGateway, "gw-0001"); return r, r != nil }(); ok {
		t.Errorf("memory still indexes an evicted record")
	}
	if r, err := w.Lookup(context.Background(), "client-0001"); err != nil || r.GatewayRequestID != "gw-0001" {
		t.Errorf("Lookup(client-0001) = %v, %v; want gw-0001 from files", r, err)
	}
}

func TestWriterRotationBySize(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir, Capture: configs.Capture{MaxFileBytes: 4096}})
	w.Start()
	const n = 100
	for i := range n {
		w.Enqueue(testRecord(i))
	}
	closeWriter(t, w)
	names, _ := listFiles(filepath.Join(dir, captureSubdir))
	if len(names) < 5 {
		t.Fatalf("got %d files; want rotation into many 4 KiB files", len(names))
	}
	for _, n := range names {
		st, _ := os.Stat(n)
		if st.Size() > 4096 {
			t.Errorf("%s is %d bytes; want ≤ 4096", filepath.Base(n), st.Size())
		}
		if !strings.HasPrefix(filepath.Base(n), "capture-") {
			t.Errorf("unexpected file %s", n)
		}
	}
	if recs := readRecords(t, dir); len(recs) != n {
		t.Errorf("files hold %d records; want %d", len(recs), n)
	}
	if r, err := FindInDir(dir, "gw-0000"); err != nil || r.ClientRequestID != "client-0000" {
		t.Errorf("FindInDir(gw-0000) = %v, %v", r, err)
	}
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func TestWriterDayRotationAndRetention(t *testing.T) {
	dir := t.TempDir()
	cdir := filepath.Join(dir, captureSubdir)
	os.MkdirAll(cdir, 0o750)
	for _, name := range []string{"capture-2026-11-10-0001.jsonl", "capture-2026-11-16-0003.jsonl", "capture-2026-11-17-0001.jsonl", "capture-2026-11-18-0001.jsonl", "notes.txt"} {
		os.WriteFile(filepath.Join(cdir, name), []byte("{}\n"), 0o640)
	}
	clock := &testClock{t: time.Date(2026, 11, 24, 23, 59, 0, 0, time.UTC)}
	w := newTestWriter(t, WriterOptions{DataDir: dir, Now: clock.Now, Capture: configs.Capture{RetentionDays: 7}})
	w.Start()
	w.Enqueue(testRecord(1))
	waitFor(t, func() bool { _, err := w.Lookup(context.Background(), "gw-0001"); return err == nil })
	clock.Set(time.Date(2026, 11, 25, 0, 1, 0, 0, time.UTC))
	w.Enqueue(testRecord(2))
	closeWriter(t, w)
	var got []string
	ents, _ := os.ReadDir(cdir)
	for _, e := range ents {
		got = append(got, e.Name())
	}
	// On the 25th, 7 days keep the 19th onwards; the 18th went too.
	want := "capture-2026-11-24-0001.jsonl capture-2026-11-25-0001.jsonl notes.txt"
	if strings.Join(got, " ") != want {
		t.Errorf("files = %v; want %s", got, want)
	}
}

func TestWriterQueueFullDropsAndCounts(t *testing.T) {
	dir := t.TempDir()
	m := NewMetrics()
	w := newTestWriter(t, WriterOptions{DataDir: dir, Metrics: m, Capture: configs.Capture{QueueSize: 4}})
	// Not started: the queue fills.
	for i := range 10 {
		w.Enqueue(testRecord(i))
	}
	text := metricsText(m)
	for _, want := range []string{"cairn_capture_dropped_total 6\n", "cairn_capture_queue_depth 4\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	// Close drains what was queued, even without Start.
	closeWriter(t, w)
	if recs := readRecords(t, dir); len(recs) != 4 {
		t.Errorf("files hold %d records; want the 4 queued", len(recs))
	}
	w.Enqueue(testRecord(99)) // after Close: dropped and counted
	if text := metricsText(m); !strings.Contains(text, "cairn_capture_dropped_total 7\n") || !strings.Contains(text, "cairn_capture_written_total 4\n") {
		t.Errorf("metrics after Close:\n%s", text)
	}
}

func metricsText(m *Metrics) string {
	var b bytes.Buffer
	m.WritePrometheus(&b)
	return b.String()
}

func TestWriterCloseFlushesConcurrentEnqueues(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir})
	w.Start()
	var wg sync.WaitGroup
	const goroutines, each = 4, 500
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				w.Enqueue(testRecord(g*each + i))
			}
		}()
	}
	wg.Wait()
	closeWriter(t, w)
	if recs := readRecords(t, dir); len(recs) != goroutines*each {
		t.Errorf("files hold %d records; want %d", len(recs), goroutines*each)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
}

func TestWriterCloseDeadline(t *testing.T) {
	w := newTestWriter(t, WriterOptions{DataDir: t.TempDir()})
	block := make(chan struct{})
	w.Subscribe(func(*Record) { <-block })
	w.Start()
	for i := range 10 {
		w.Enqueue(testRecord(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	go func() { time.Sleep(200 * time.Millisecond); close(block) }()
	if err := w.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close past its deadline = %v; want DeadlineExceeded", err)
	}
	if text := metricsText(w.metrics); strings.Contains(text, "cairn_capture_dropped_total 0\n") {
		t.Errorf("records abandoned at the deadline are not counted:\n%s", text)
	}
}

func TestWriterSampling(t *testing.T) {
	dir := t.TempDir()
	zero := 0.0
	w := newTestWriter(t, WriterOptions{DataDir: dir, Capture: configs.Capture{BodySampleRate: &zero}})
	w.Start()
	ok := testRecord(1)
	failed := testRecord(2)
	failed.Status, failed.Outcome = 502, OutcomeUpstreamError
	failed.Raw.ResponseBody = []byte(`{"error":{"message":"boom for bob@example.com","type":"server_error"}}`)
	w.Enqueue(ok)
	w.Enqueue(failed)
	closeWriter(t, w)
	recs := readRecords(t, dir)
	if len(recs) != 2 {
		t.Fatalf("got %d records; want 2", len(recs))
	}
	if recs[0].BodySampled || recs[0].Request != nil || recs[0].Response != nil {
		t.Errorf("unsampled ok record kept bodies: %+v", recs[0])
	}
	if !recs[1].BodySampled || recs[1].Request == nil ||
		string(recs[1].Response) != `{"error":{"message":"boom for [EMAIL]","type":"server_error"}}` {
		t.Errorf("failed record bodies = %v %s %s; want kept and masked", recs[1].BodySampled, recs[1].Request, recs[1].Response)
	}
	if recs[0].Status != 200 || recs[0].Usage.TotalTokens != 15 {
		t.Errorf("unsampled record lost its metadata: %+v", recs[0])
	}
}

func TestWriterResponseShapes(t *testing.T) {
	m := testMasker(t)
	tests := []struct {
		name     string
		endpoint string
		status   int
		raw      RawBodies
		want     string
	}{
		{"tool calls", "chat.completions", 200, RawBodies{ResponseBody: []byte(`{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"refund","arguments":"{\"card\":\"4111111111111111\"}"}}]},"finish_reason":"tool_calls"}]}`)},
			`{"tool_calls":[{"id":"c1","type":"function","function":{"name":"refund","arguments":"{\"card\":\"[CARD]\"}"}}],"finish_reason":"tool_calls"}`},
		{"stream", "chat.completions", 200, RawBodies{StreamContent: "mail bob@example.com", StreamToolCalls: []byte(`[{"id":"c1","name":"f","arguments":"{\"ip\":\"10.0.0.1\"}"}]`), FinishReason: "stop"},
			`{"content":"mail [EMAIL]","tool_calls":[{"id":"c1","name":"f","arguments":"{\"ip\":\"[IPV4]\"}"}],"finish_reason":"stop"}`},
		{"stream broken", "chat.completions", 200, RawBodies{StreamContent: "partial", ResponseBody: []byte("reset by peer 10.0.0.2")},
			`{"content":"partial","error":"reset by peer [IPV4]"}`},
		{"embeddings", "embeddings", 200, RawBodies{ResponseBody: []byte(`{"data":[{"embedding":[0.1,0.2]},{"embedding":[0.3,0.4]}]}`)},
			`{"embeddings":2}`},
		{"error not json", "chat.completions", 502, RawBodies{ResponseBody: []byte("<html>bad gateway for +14155550100</html>")},
			`"<html>bad gateway for [PHONE]</html>"`},
		{"n choices", "chat.completions", 200, RawBodies{ResponseBody: []byte(`{"choices":[{"message":{"content":"a"},"finish_reason":"stop"},{"message":{"content":"b"},"finish_reason":"stop"}]}`)},
			`{"content":"a","finish_reason":"stop","choices":2}`},
		{"none", "models", 200, RawBodies{}, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(m.response(tt.endpoint, tt.status, &tt.raw))
			if got != tt.want {
				t.Errorf("response(%s) = %s; want %s", tt.name, got, tt.want)
			}
		})
	}
}

func TestWriterRequestShapes(t *testing.T) {
	m := testMasker(t)
	tests := []struct{ name, body, want string }{
		{"chat", `{"model":"m","messages":[{"role":"system","content":"x"},{"role":"user","content":[{"type":"text","text":"bob@example.com"}]}]}`,
			`[{"role":"system","content":"x"},{"role":"user","content":[{"type":"text","text":"[EMAIL]"}]}]`},
		{"embeddings", `{"model":"e","input":["call +14155550100","x"]}`, `["call [PHONE]","x"]`},
		{"no messages", `{"model":"m","note":"AKIAIOSFODNN7EXAMPLE"}`, `{"model":"m","note":"[SECRET]"}`},
		{"not json", `model=m&email=bob@example.com`, `"model=m\u0026email=[EMAIL]"`},
		{"empty", ``, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(m.requestMessages([]byte(tt.body), false))
			if tt.name == "not json" {
				tt.want = `"model=m&email=[EMAIL]"`
			}
			if got != tt.want {
				t.Errorf("requestMessages(%s) = %s; want %s", tt.body, got, tt.want)
			}
		})
	}
}

func TestHeaderAllowList(t *testing.T) {
	m := testMasker(t)
	got := m.maskHeaders(map[string]string{
		"Authorization":       "Bearer sk-abcdefghijklmnopqrstuvwxyz0123",
		"X-Api-Key":           "anything",
		"api-key":             "anything",
		"Cookie":              "s=1",
		"X-Client-Request-Id": "req-bob@example.com",
		"User-Agent":          "OpenAI/Python 1.99.0",
		"x-stainless-os":      "Linux",
		"x-forwarded-for":     "203.0.113.9",
		"x-custom":            "nope",
		"x-stainless-token":   "nope",
	})
	want := map[string]string{
		"x-client-request-id": "[EMAIL]", // req-bob@… is itself an address
		"user-agent":          "OpenAI/Python 1.99.0",
		"x-stainless-os":      "Linux",
		"x-forwarded-for":     "[IPV4]",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("maskHeaders = %v; want %v", got, want)
	}
}

// canaries are secrets and personal data that must appear nowhere raw.
var canaries = []string{
	"canary.bob@example.com", "4111 1111 1111 1111", "5500000000000004", "DE89 3704 0044 0532 0130 00",
	"GB82WEST12345698765432", "+1 415 555 0100", "(212) 555-0199", "sk-proj-CANARYabcdefghijklmnop0123456789",
	"AKIAIOSFODNN7CANARY1", "ghp_CANARYabcdefghijklmnopqrstuvwxyz0123", testJWT, "198.51.100.77",
	"2001:db8::cafe:1", "990101300123", "xoxb-123456789012-CANARYtoken",
}

func TestCanariesNowhereRaw(t *testing.T) {
	dir := t.TempDir()
	rs := redistest.Start(t)
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rc.Close()
	m := NewMetrics()
	w := newTestWriter(t, WriterOptions{DataDir: dir, Metrics: m, Redis: rc})
	var observed []*Record
	w.Subscribe(func(r *Record) { observed = append(observed, r) })
	w.Start()
	c := canaries
	all := strings.Join(c, " ; ")
	args, _ := json.Marshal(map[string]any{"email": c[0], "card": c[1], "nested": map[string]string{"iban": c[3]}})
	reqBody, _ := json.Marshal(map[string]any{
		"model": "support-bot",
		"messages": []any{
			map[string]any{"role": "system", "content": "Operator key " + c[7]},
			map[string]any{"role": "user", "content": []any{
				map[string]any{"type": "text", "text": "I am " + c[0] + ", card " + c[1] + ", phone " + c[5]},
				map[string]any{"type": "text", "text": all},
			}},
			map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{
				map[string]any{"id": "call_1", "type": "function", "function": map[string]any{"name": "refund", "arguments": string(args)}},
			}},
			map[string]any{"role": "tool", "tool_call_id": "call_1", "content": string(args)},
		},
		"user": c[0],
	})
	respBody, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{
		"message":       map[string]any{"role": "assistant", "content": "Refund to " + all, "tool_calls": []any{map[string]any{"id": "c2", "type": "function", "function": map[string]any{"name": "notify", "arguments": string(args)}}}},
		"finish_reason": "tool_calls",
	}}})
	streamCalls, _ := json.Marshal([]any{map[string]any{"id": "c3", "name": "lookup", "arguments": string(args)}})
	errBody, _ := json.Marshal(map[string]any{"error": map[string]any{"message": "invalid key " + c[7] + " for " + c[0] + " " + all, "type": "invalid_request_error"}})
	headers := map[string]string{
		"authorization": "Bearer " + c[7], "x-api-key": c[8], "user-agent": "app " + c[0],
		"x-client-request-id": "rid-" + c[0], "x-client-name": c[5], "x-forwarded-for": c[11],
	}
	mk := func(i int) *Record {
		r := testRecord(i)
		r.Headers = maps.Clone(headers)
		r.Error = "upstream said: " + all
		r.Client = "app " + c[0]
		r.Contract = Verdict{Verdict: VerdictFail, Reasons: []string{"/email: " + c[0] + " is not allowed", all}}
		r.Attempts = []Attempt{{Provider: "openai", Model: "gpt-4o-mini", Status: 500, Error: "dial " + c[11] + ":443: " + all}}
		return r
	}
	r1 := mk(1) // non-streaming with tool calls both ways
	r1.Raw = &RawBodies{RequestBody: reqBody, ResponseBody: respBody}
	r2 := mk(2) // stream
	r2.Params.Stream = true
	r2.Raw = &RawBodies{RequestBody: reqBody, StreamContent: "streamed " + all, StreamToolCalls: streamCalls, FinishReason: "tool_calls"}
	r3 := mk(3) // error
	r3.Status, r3.Outcome = 401, OutcomeUpstream4xx
	r3.Raw = &RawBodies{RequestBody: reqBody, ResponseBody: errBody}
	r4 := mk(4) // error body that is not JSON, invalid request body
	r4.Status, r4.Outcome = 502, OutcomeUpstreamError
	r4.Raw = &RawBodies{RequestBody: []byte(`{"messages": [` + all), ResponseBody: []byte("<html>" + all + "</html>")}
	for _, r := range []*Record{r1, r2, r3, r4} {
		w.Enqueue(r)
	}
	closeWriter(t, w)

	var haystacks []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(p)
			haystacks = append(haystacks, string(b))
		}
		return nil
	})
	haystacks = append(haystacks, metricsText(m))
	for _, r := range observed {
		b, _ := json.Marshal(r)
		haystacks = append(haystacks, string(b))
	}
	msgs, err := rc.XRange(context.Background(), RedisStream, "-", "+").Result()
	if err != nil || len(msgs) != 4 {
		t.Fatalf("redis stream holds %d entries (%v); want 4", len(msgs), err)
	}
	for _, msg := range msgs {
		haystacks = append(haystacks, fmt.Sprint(msg.Values))
	}
	keys, _ := rc.Keys(context.Background(), "*").Result()
	haystacks = append(haystacks, strings.Join(keys, "\n"))
	for _, h := range haystacks {
		for _, canary := range c {
			for _, form := range []string{canary, strings.ReplaceAll(canary, " ", "")} {
				if strings.Contains(h, form) {
					t.Errorf("canary %q found raw in %.300s", form, h)
				}
			}
		}
	}
	recs := readRecords(t, dir)
	if len(recs) != 4 || len(observed) != 4 {
		t.Fatalf("got %d records, %d observed; want 4", len(recs), len(observed))
	}
	// The masked content is still there, with placeholders.
	for _, want := range []string{"[EMAIL]", "[CARD]", "[IBAN]", "[PHONE]", "[SECRET]", "[JWT]", "[IPV4]", "[IPV6]", "[KZ_IIN]"} {
		if !strings.Contains(string(recs[0].Request), want) {
			t.Errorf("record 1 request lacks %s: %s", want, recs[0].Request)
		}
	}
	if _, ok := recs[0].Headers["authorization"]; ok {
		t.Errorf("authorization header captured")
	}
	if _, ok := recs[0].Headers["x-api-key"]; ok {
		t.Errorf("x-api-key header captured")
	}
	for _, r := range recs {
		if r.Response == nil || r.Request == nil || !r.BodySampled {
			t.Errorf("record %s lost its bodies", r.GatewayRequestID)
		}
	}
}

func TestWriterMaskedClientIDNotIndexed(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir})
	w.Start()
	a, b := testRecord(1), testRecord(2)
	a.ClientRequestID, b.ClientRequestID = "req-alice@example.com", "req-bob@example.com"
	w.Enqueue(a)
	w.Enqueue(b)
	closeWriter(t, w)
	// The placeholder is not an ID; the raw ID finds its own record
	// through the keyed hash (issue 12.14).
	if r, err := w.Lookup(context.Background(), "req-alice@example.com"); err != nil || r.GatewayRequestID != "gw-0001" {
		t.Errorf("Lookup(raw alice ID) = %v, %v; want gw-0001", r, err)
	}
	if r, err := FindInDir(dir, "req-bob@example.com"); err != nil || r.GatewayRequestID != "gw-0002" {
		t.Errorf("FindInDir(raw bob ID) = %v, %v; want gw-0002", r, err)
	}
	for _, id := range []string{"[EMAIL]", "req-[EMAIL]"} {
		if r, err := w.Lookup(context.Background(), id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%q) = %v, %v; want ErrNotFound", id, r, err)
		}
		if r, err := FindInDir(dir, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("FindInDir(%q) = %v, %v; want ErrNotFound", id, r, err)
		}
	}
	if r, err := w.Lookup(context.Background(), "gw-0002"); err != nil || r.ClientRequestID != "[EMAIL]" {
		t.Errorf("Lookup(gw-0002) = %v, %v; want the record with its client ID masked", r, err)
	}
}

func TestMemoryByteBudget(t *testing.T) {
	m := newMemory(100, 0)
	m.maxBytes = 10 * 2048
	for i := range 50 {
		r := testRecord(i)
		r.Raw = nil
		r.Request = json.RawMessage(`"` + strings.Repeat("x", 1000) + `"`)
		m.add(r)
	}
	got := m.recent(100, nil)
	if len(got) == 0 || len(got) > 10 || got[0].GatewayRequestID != "gw-0049" {
		t.Errorf("recent after budget = %d records starting %v; want ≤ 10, newest first", len(got), got[0].GatewayRequestID)
	}
	if m.lookup(IDGateway, "gw-0000") != nil || m.lookup(IDGateway, "gw-0049") == nil {
		t.Errorf("index does not follow evictions")
	}
	if m.bytes > m.maxBytes {
		t.Errorf("memory holds %d bytes; budget %d", m.bytes, m.maxBytes)
	}
}

func TestWriterQueueBodyBudget(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir, Capture: configs.Capture{QueueSize: 16}})
	w.maxQBytes = 1 << 20
	big := testRecord(1)
	big.Outcome, big.Status = OutcomeUpstreamError, 502
	big.Raw.RequestBody = []byte(`{"messages":[{"role":"user","content":"` + strings.Repeat("a", 600<<10) + `"}]}`)
	w.Enqueue(big)
	big2 := testRecord(2)
	big2.Raw.RequestBody = big.Raw.RequestBody[:len(big.Raw.RequestBody):len(big.Raw.RequestBody)]
	big2.Outcome, big2.Status = OutcomeUpstreamError, 502
	w.Enqueue(big2) // passes the budget: kept without bodies
	if got := w.metrics.bodiesDropped[BodiesQueueBytes].Load(); got != 1 {
		t.Errorf("bodies dropped = %d; want 1", got)
	}
	w.Start()
	closeWriter(t, w)
	recs := readRecords(t, dir)
	if len(recs) != 2 || !recs[0].BodySampled || recs[1].BodySampled {
		t.Fatalf("records = %d, sampled %v/%v; want 2, the first with bodies", len(recs), recs[0].BodySampled, recs[1].BodySampled)
	}
	if n := w.qBytes.Load(); n != 0 {
		t.Errorf("queued bytes after drain = %d; want 0", n)
	}
}

func TestMaskingFailureStoresPlaceholder(t *testing.T) {
	m := testMasker(t)
	m.add(detector{kind: detFunc, ph: "[BOOM]", find: func(string, []span) []span { panic("detector bug") }})
	if got := m.String("bob@example.com"); got != PlaceholderMaskingFailed {
		t.Errorf("String with a panicking detector = %q; want %q", got, PlaceholderMaskingFailed)
	}
	if got := string(m.JSON([]byte(`{"a":"bob@example.com"}`))); got != `"[MASKING_FAILED]"` {
		t.Errorf("JSON with a panicking detector = %s; want \"[MASKING_FAILED]\"", got)
	}
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir, Masker: m})
	w.Start()
	r := testRecord(1)
	r.Error = "failed for bob@example.com"
	r.Raw.RequestBody = []byte(`{"messages":[{"role":"user","content":"bob@example.com"}]}`)
	r.Headers = map[string]string{"user-agent": "bob@example.com"}
	w.Enqueue(r)
	closeWriter(t, w)
	b, _ := os.ReadFile(filepath.Join(dir, captureSubdir, fileName(time.Now().UTC().Format(dayLayout), 1)))
	if strings.Contains(string(b), "bob@example.com") || !strings.Contains(string(b), `"request":"[MASKING_FAILED]"`) {
		t.Errorf("record with failed masking = %s; want placeholders, no raw text", b)
	}
}
