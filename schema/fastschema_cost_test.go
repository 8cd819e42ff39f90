package schema

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// TestFastSchemaCostEstimate: a direct validator's cost estimate, which
// the cache adds to the entry's cost, is not short of the heap it keeps by
// more than a fifth, so that the cache's budget still bounds memory.
func TestFastSchemaCostEstimate(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"type":"object","additionalProperties":false,"required":["p0"],"properties":{`)
	for i := range 1000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"p%d":{"type":["string","null"],"maxLength":%d,"enum":["x%d","y",null]},"n%d":{"type":"number","minimum":0.5,"maximum":%d},"a%d":{"type":"array","items":{"type":"integer"}}`, i, i+1, i, i, i+10, i)
	}
	b.WriteString(`}}`)
	src := b.String()
	s := mustCompile(t, src)
	const copies = 8
	var fss [copies]*fastSchema
	runtime.GC()
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for i := range fss {
		fss[i] = newFastSchema(s)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	fs := fss[0]
	if fs == nil {
		t.Fatal("no direct validator")
	}
	kept := (int64(m1.HeapAlloc) - int64(m0.HeapAlloc)) / copies
	t.Logf("%d subschemas: %d bytes kept, estimate %d (%.2f)", len(fs.nodes), kept, fs.cost, float64(fs.cost)/float64(kept))
	if fs.cost < kept*4/5 {
		t.Errorf("fastSchema.cost = %d; the validator keeps %d bytes", fs.cost, kept)
	}
	runtime.KeepAlive(&fss)
	runtime.KeepAlive(s)
	runtime.KeepAlive(src)
}

// TestFastSchemaCostCounted: the cache counts a direct validator's memory
// in its entry's cost.
func TestFastSchemaCostCounted(t *testing.T) {
	req, err := ParseChatRequest(chatBody(`"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + routeSchema + `}}`))
	if err != nil {
		t.Fatal(err)
	}
	c := NewContracts(16)
	ct, err := c.Prepare(nil, &req)
	if err != nil {
		t.Fatal(err)
	}
	if ct.formatFast == nil {
		t.Fatal("no direct validator")
	}
	if got, want := c.Stats().Cost, compiledCost(req.ResponseSchema)+ct.formatFast.cost; got != want {
		t.Errorf("cache cost = %d; want %d (the schema's estimate and its direct validator's)", got, want)
	}
	// The route schema's validator is an entry of its own.
	if _, err := c.Prepare(mustCompile(t, routeSchema), &req); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Entries != 2 {
		t.Errorf("entries = %d; want 2", st.Entries)
	}
}
