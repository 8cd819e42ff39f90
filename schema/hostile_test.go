package schema

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// TestDuplicateKeysRefused: every object the gateway reads is refused when
// it repeats a key, naming the key's path (issue 12.10: the gateway and the
// upstream could read different values).
func TestDuplicateKeysRefused(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct{ name, body, param string }{
		{"include_usage", `{"model":"m",` + msgs + `,"stream":true,"stream_options":{"include_usage":false,"include_usage":true}}`, "stream_options.include_usage"},
		{"model", `{"model":"m","model":"n",` + msgs + `}`, "model"},
		{"stream", `{"model":"m",` + msgs + `,"stream":false,"stream":true}`, "stream"},
		{"response_format", `{"model":"m",` + msgs + `,"response_format":{"type":"text"},"response_format":{"type":"json_object"}}`, "response_format"},
		{"response_format.type", `{"model":"m",` + msgs + `,"response_format":{"type":"text","type":"json_object"}}`, "response_format.type"},
		{"json_schema.schema", `{"model":"m",` + msgs + `,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{},"schema":{"type":"object"}}}}`, "response_format.json_schema.schema"},
		{"escaped key", `{"model":"m",` + msgs + `,"response_format":{"type":"text","t\u0079pe":"json_object"}}`, "response_format.type"},
		{"tools", `{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"g"}}],"tools":[{"type":"function","function":{"name":"f"}}]}`, "tools"},
		{"tool type", `{"model":"m",` + msgs + `,"tools":[{"type":"function","type":"custom","function":{"name":"f"}}]}`, "tools[0].type"},
		{"tool function name", `{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"f","name":"g"}}]}`, "tools[0].function.name"},
		{"tool parameters", `{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"f","parameters":{},"parameters":{"type":"object"}}}]}`, "tools[0].function.parameters"},
		{"tool_choice", `{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f","name":"g"}}}`, "tool_choice.function.name"},
		{"message role", `{"model":"m","messages":[{"role":"user","role":"system","content":"hi"}]}`, "messages[0].role"},
		{"message content", `{"model":"m","messages":[{"role":"user","content":"a \"quoted\" one","content":"b"}]}`, "messages[0].content"},
		{"content part", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a","text":"b"}]}]}`, "messages[0].content[0].text"},
		{"many keys", `{"model":"m","messages":[{"role":"user","content":"x",` + manyKeys(20) + `,"ka0":1}]}`, "messages[0].ka0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseChatRequest([]byte(tt.body))
			re, ok := err.(*RequestError)
			if !ok || re.Param != tt.param || !strings.Contains(re.Message, "duplicate key") {
				t.Fatalf("ParseChatRequest(%s) = %v; want a duplicate key error with param %q", tt.body, err, tt.param)
			}
		})
	}
	// Inside a schema the error names the schema and the key's path in it.
	c := NewContracts(8)
	for _, body := range []string{
		`{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string","type":"number"}}}}}]}`,
		`{"model":"m",` + msgs + `,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","required":["a"],"required":[]}}}}`,
	} {
		req, err := ParseChatRequest([]byte(body))
		if err != nil {
			t.Fatalf("ParseChatRequest: %v", err)
		}
		_, err = c.Prepare(nil, &req)
		if re, ok := err.(*RequestError); !ok || !strings.Contains(re.Message, "duplicate key") {
			t.Errorf("Prepare(%s) = %v; want a duplicate key error", body, err)
		}
	}
	// Distinct keys that share a prefix, and repeated keys in objects the
	// gateway does not read, pass.
	for _, body := range []string{
		`{"model":"m",` + msgs + `,"metadata":{"a":1,"a":2},"stream_options":{"include_usage":true,"include_usage_x":false},"stream":true}`,
		`{"model":"m","messages":[{"role":"user","content":"x",` + manyKeys(40) + `}]}`,
	} {
		if _, err := ParseChatRequest([]byte(body)); err != nil {
			t.Errorf("ParseChatRequest(%.80s) = %v; want no error", body, err)
		}
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + string(rune('0'+i/26)) + `":` + `{"v":[1,"}"]}`)
	}
	return b.String()
}

// typicalTools returns a tools array of about n bytes of ordinary function
// definitions, made distinct by tag.
func typicalTools(n int, tag string) []byte {
	var b strings.Builder
	b.WriteString("[")
	for i := 0; b.Len() < n-400; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"type":"function","function":{"name":"f%d%s","parameters":{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"number","minimum":1},"c":{"type":"array","items":{"type":"string","enum":["x","y"]}}},"required":["a"]}}}`, i, tag)
	}
	b.WriteString("]")
	return []byte(b.String())
}

func toolsRequest(t *testing.T, tools []byte) Request {
	t.Helper()
	req, err := ParseChatRequest([]byte(`{"model":"m","messages":[{"role":"user","content":"x"}],"tools":` + string(tools) + `}`))
	if err != nil {
		t.Fatalf("ParseChatRequest: %v", err)
	}
	return req
}

// TestCompiledCostBounded: a tools array whose compiled form would keep
// more than MaxCompiledCost is refused before it is compiled (issue 12.8:
// 1 MiB of tools compiled to ~17 MiB in 0.5 s, in a cache of 1,024
// entries), and the whole cache stays within its cost budget.
func TestCompiledCostBounded(t *testing.T) {
	c := NewContracts(1024)
	req := toolsRequest(t, typicalTools(1<<20, ""))
	t0 := time.Now()
	_, err := c.Prepare(nil, &req)
	re, ok := err.(*RequestError)
	if !ok || re.Param != "tools" || !strings.Contains(re.Message, "too large to check") {
		t.Fatalf("Prepare(1 MiB tools) = %v; want a RequestError on tools", err)
	}
	if st := c.Stats(); st.Compiles != 0 {
		t.Errorf("Prepare(1 MiB tools) compiled %d schemas (in %v); want the refusal before compiling", st.Compiles, time.Since(t0))
	}

	const budget = 12 << 20
	c = NewContractsBudget(1024, budget)
	for i := range 12 {
		req := toolsRequest(t, typicalTools(100<<10, fmt.Sprint("_", i))) // ~2.5 MiB compiled each
		if _, err := c.Prepare(nil, &req); err != nil {
			t.Fatalf("Prepare(100 KiB tools #%d) = %v", i, err)
		}
		if st := c.Stats(); st.Cost > budget {
			t.Fatalf("after %d tools arrays the cache costs %d; budget %d", i+1, st.Cost, budget)
		}
	}
	if st := c.Stats(); st.Evictions == 0 || st.Entries >= 12 {
		t.Errorf("Stats() = %+v; want evictions to keep the cost under budget", st)
	}
}

// TestCompiledCostEstimate checks compiledCost against the heap a compiled
// tools array really keeps: the estimate must not fall short by more than
// a fifth, or the budgets above would not bound memory.
func TestCompiledCostEstimate(t *testing.T) {
	raw := typicalTools(256<<10, "")
	c := NewContracts(8)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	ts, err := c.toolSet(raw)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	kept := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
	est := compiledCost(raw)
	t.Logf("%d bytes of tools: %d bytes kept, estimate %d (%.2f)", len(raw), kept, est, float64(est)/float64(kept))
	if est < kept*4/5 {
		t.Errorf("compiledCost = %d; the compiled tools keep %d bytes", est, kept)
	}
	runtime.KeepAlive(ts)
}

// TestCachedToolsDoNotAliasBody: nothing a cached tool set keeps points
// into the request body (issue 12.8: a custom tool's name was a map key
// aliasing the body, which kept the whole body alive with the entry).
func TestCachedToolsDoNotAliasBody(t *testing.T) {
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom","custom":{"name":"free_text"}},{"type":"function","function":{"name":"fn","parameters":{"type":"object"}}}],"tool_choice":{"type":"custom","custom":{"name":"free_text"}}}`)
	req, err := ParseChatRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := NewContracts(8).Prepare(nil, &req)
	if err != nil {
		t.Fatal(err)
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(body)))
	hi := lo + uintptr(len(body))
	inBody := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return len(s) > 0 && p >= lo && p < hi
	}
	for k, d := range ct.tools.byName {
		if inBody(k) || inBody(d.name) {
			t.Errorf("cached tool %q aliases the request body (key %v, name %v)", k, inBody(k), inBody(d.name))
		}
	}
	if inBody(ct.choiceName) {
		t.Errorf("the contract's tool_choice name aliases the request body")
	}
}

// TestRequestRebase: after Rebase the fields that aliased the parsed
// buffer alias the copy instead, with the same bytes.
func TestRequestRebase(t *testing.T) {
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object"}}},"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"auto"}`)
	req, err := ParseChatRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	cp := append([]byte(nil), body...)
	req.Rebase(body, cp)
	for i := range body {
		body[i] = 'X' // the parsed buffer is reused by the server
	}
	if string(req.ResponseSchema) != `{"type":"object"}` || string(req.Tools) != `[{"type":"function","function":{"name":"f"}}]` || string(req.ToolChoice) != `"auto"` {
		t.Errorf("after Rebase: schema %s tools %s choice %s; want the copy's bytes", req.ResponseSchema, req.Tools, req.ToolChoice)
	}
}
