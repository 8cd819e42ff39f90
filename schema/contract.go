package schema

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/santhosh-tekuri/jsonschema/v5"
	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/internal/jsonscan"
)

// Bounds on request-supplied JSON Schemas (untrusted input).
const (
	// MaxRequestSchemaBytes bounds one response_format schema or one
	// tool's parameters.
	MaxRequestSchemaBytes = 64 << 10
	// MaxRequestSchemaDepth bounds how deeply such a schema nests.
	MaxRequestSchemaDepth = 32
	// MaxToolsBytes bounds the tools array Cairn compiles contracts from.
	MaxToolsBytes = 1 << 20
	// MaxCompiledCost bounds the estimated memory one compiled
	// response_format schema or tools array keeps (see compiledCost):
	// about 12,000 schema objects. Above it the request is refused before
	// anything is compiled (issue 12.8: one 1 MiB tools array compiled to
	// ~17-24 MiB in 0.5 s of CPU).
	MaxCompiledCost = 8 << 20
	// DefaultCacheCost is the default budget of a whole Contracts cache,
	// in the same estimated bytes; the least recently used entries are
	// evicted to stay under it.
	DefaultCacheCost = 64 << 20
)

// costPerObject is the memory a compiled jsonschema.Schema keeps per
// object of its source, measured at ~655 bytes on 1 MiB of typical tool
// definitions (go test ./schema -run TestCompiledCostEstimate -v prints
// the ratio).
const costPerObject = 700

// compiledCost estimates the memory the compiled form of raw keeps: its
// objects (each a potential subschema) times costPerObject, plus the raw
// bytes. It is an upper bound for typical schemas ('{' inside strings are
// counted too) and costs one scan.
func compiledCost(raw []byte) int64 {
	return int64(bytes.Count(raw, []byte{'{'}))*costPerObject + int64(len(raw))
}

// Verdict results.
const (
	ResultPass = "pass"
	ResultFail = "fail"
	ResultNone = "none"
)

// Bounds on a verdict's reasons.
const (
	MaxReasons     = 10
	MaxReasonBytes = 300
)

// Verdict is the outcome of checking one response against its contract.
type Verdict struct {
	// Result is "pass", "fail" or "none" (no contract applies).
	Result string
	// Reasons name what failed, at most MaxReasons of at most
	// MaxReasonBytes each, e.g. "/confidence: missing property". Empty
	// unless Result is "fail".
	Reasons []string
}

// Contracts compiles request-supplied schemas (response_format.json_schema
// and tools[].function.parameters) and caches them, and refusals too, keyed
// by the SHA-256 of their bytes, so repeated requests compile nothing. The
// cache holds at most maxEntries entries and evicts with the CLOCK
// algorithm. A Contracts is safe for concurrent use.
type Contracts struct {
	max     int
	maxCost int64 // budget of the sum of the entries' cost

	mu       sync.RWMutex
	m        map[[32]byte]*cacheEntry
	inflight map[[32]byte]*flight // compiles under way, so that a burst of one new schema compiles it once
	ring     []*cacheEntry
	hand     int
	cost     int64 // sum of the entries' cost
	stats    struct {
		hits, misses, compiles, evictions atomic.Int64
	}
}

// cacheEntry is immutable once published, except for its reference bit.
type cacheEntry struct {
	key    [32]byte
	schema *jsonschema.Schema // response_format schema, or the route schema of a routeKey entry
	fast   *fastSchema        // schema's direct validator; nil: the library alone
	tools  *toolSet
	err    *RequestError
	cost   int64 // estimated bytes kept (compiledCost), at least entryOverhead
	ref    atomic.Bool
}

// entryOverhead is the cost of an entry beyond its compiled schemas: the
// entry, its map slot and a cached refusal's message.
const entryOverhead = 512

// flight is a compile under way; done closes when e is set.
type flight struct {
	done chan struct{}
	e    *cacheEntry
}

// toolSet is the compiled form of one tools array.
type toolSet struct {
	byName map[string]*toolDef
}

type toolDef struct {
	name   string
	custom bool               // a custom tool: free-text input, not JSON
	params *jsonschema.Schema // nil: parameters absent
	fast   *fastSchema        // params' direct validator; nil: the library alone
}

// CacheStats are counters of a Contracts cache.
type CacheStats struct {
	Entries int
	// Cost is the estimated memory the entries keep, in bytes.
	Cost                              int64
	Hits, Misses, Compiles, Evictions int64
}

// NewContracts returns an empty cache of at most maxEntries compiled
// schemas and tool sets (at least 1; 1024 is a sensible default) keeping
// at most DefaultCacheCost estimated bytes.
func NewContracts(maxEntries int) *Contracts {
	return NewContractsBudget(maxEntries, DefaultCacheCost)
}

// NewContractsBudget is NewContracts with a budget of maxCost estimated
// bytes for the whole cache (at least MaxCompiledCost, so that any entry
// the per-entry bound admits fits).
func NewContractsBudget(maxEntries int, maxCost int64) *Contracts {
	maxEntries = max(maxEntries, 1)
	return &Contracts{
		max:      maxEntries,
		maxCost:  max(maxCost, MaxCompiledCost+entryOverhead),
		m:        make(map[[32]byte]*cacheEntry, min(maxEntries, 1024)),
		inflight: make(map[[32]byte]*flight),
	}
}

// Stats returns the cache's counters.
func (c *Contracts) Stats() CacheStats {
	c.mu.RLock()
	n, cost := len(c.m), c.cost
	c.mu.RUnlock()
	return CacheStats{
		Entries: n, Cost: cost, Hits: c.stats.hits.Load(), Misses: c.stats.misses.Load(),
		Compiles: c.stats.compiles.Load(), Evictions: c.stats.evictions.Load(),
	}
}

func (c *Contracts) get(key [32]byte) *cacheEntry {
	c.mu.RLock()
	e := c.m[key]
	c.mu.RUnlock()
	if e == nil {
		c.stats.misses.Add(1)
		return nil
	}
	if !e.ref.Load() {
		e.ref.Store(true)
	}
	c.stats.hits.Add(1)
	return e
}

// lookup returns the entry for key, calling build to make it on a miss.
// Concurrent misses of one key wait for a single build.
func (c *Contracts) lookup(key [32]byte, build func() *cacheEntry) *cacheEntry {
	if e := c.get(key); e != nil {
		return e
	}
	c.mu.Lock()
	if e := c.m[key]; e != nil {
		c.mu.Unlock()
		return e
	}
	if f := c.inflight[key]; f != nil {
		c.mu.Unlock()
		<-f.done
		return f.e
	}
	f := &flight{done: make(chan struct{})}
	c.inflight[key] = f
	c.mu.Unlock()

	e := func() (e *cacheEntry) {
		defer func() {
			if recover() != nil { // untrusted input must not crash the gateway
				e = &cacheEntry{err: reqErr("", "invalid JSON Schema: it could not be compiled")}
			}
		}()
		return build()
	}()
	e.key = key
	c.mu.Lock()
	c.insertLocked(e)
	delete(c.inflight, key)
	c.mu.Unlock()
	f.e = e
	close(f.done)
	return e
}

// insertLocked adds e, evicting with CLOCK while the cache is full by
// count or by cost. c.mu must be held.
func (c *Contracts) insertLocked(e *cacheEntry) {
	e.cost = max(e.cost, entryOverhead)
	for len(c.ring) > 0 && (len(c.ring) >= c.max || c.cost+e.cost > c.maxCost) {
		c.evictLocked()
	}
	c.ring = append(c.ring, e)
	c.cost += e.cost
	c.m[e.key] = e
}

// evictLocked removes the first entry at or after the hand whose
// reference bit is clear, clearing the bits it passes. The last entry of
// the ring takes the victim's slot. c.mu must be held.
func (c *Contracts) evictLocked() {
	if c.hand >= len(c.ring) {
		c.hand = 0
	}
	for c.ring[c.hand].ref.Load() {
		c.ring[c.hand].ref.Store(false)
		c.hand = (c.hand + 1) % len(c.ring)
	}
	v := c.ring[c.hand]
	delete(c.m, v.key)
	c.cost -= v.cost
	last := len(c.ring) - 1
	c.ring[c.hand] = c.ring[last]
	c.ring[last] = nil
	c.ring = c.ring[:last]
	c.stats.evictions.Add(1)
}

func cacheKey(kind string, data []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write(data)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

type choiceMode uint8

const (
	choiceAuto choiceMode = iota
	choiceNone
	choiceRequired
	choiceNamed
)

type formatMode uint8

const (
	formatNone       formatMode = iota
	formatJSONObject            // response_format json_object
	formatJSONSchema            // response_format json_schema (schema may be nil)
)

// Contract is what one response must satisfy: the route's schema, the
// request's response_format, tools and tool_choice. It is a small value,
// cheap to copy, and immutable; it refers only to compiled schemas, never to
// the request body. The zero value is the empty contract (every verdict is
// "none"). Safe for concurrent use.
type Contract struct {
	route      *jsonschema.Schema
	routeFast  *fastSchema // route's direct validator; nil: the library alone
	format     *jsonschema.Schema
	formatFast *fastSchema
	formatMode formatMode
	tools      *toolSet
	choice     choiceMode
	choiceName string
	noParallel bool
}

// Empty reports whether no contract applies, so checking would be a waste.
func (c Contract) Empty() bool {
	return c.route == nil && c.formatMode == formatNone && c.tools == nil
}

// checksContent reports whether the message content must be JSON.
func (c Contract) checksContent() bool { return c.route != nil || c.formatMode != formatNone }

// Prepare builds the contract of one request from the route's compiled
// schema (nil when the route has none) and the request's response_format,
// tools and tool_choice. A request-supplied schema that is not valid JSON
// Schema, is larger than MaxRequestSchemaBytes, nests deeper than
// MaxRequestSchemaDepth, refers to a remote or file $ref, or is too costly
// to validate returns a *RequestError naming it (e.g.
// "response_format.json_schema.schema", "tools[1].function.parameters");
// so does a tool_choice naming a function that is not among the tools.
// Compiled schemas and refusals are cached by content hash. req is only
// read; the Contract does not refer to its body.
func (c *Contracts) Prepare(route *jsonschema.Schema, req *Request) (Contract, error) {
	ct := Contract{route: route}
	if route != nil {
		ct.routeFast = c.routeValidator(route)
	}
	switch req.ResponseFormat {
	case "json_object":
		ct.formatMode = formatJSONObject
	case "json_schema":
		ct.formatMode = formatJSONSchema
		if req.ResponseSchema != nil {
			e, err := c.responseSchema(req.ResponseSchema)
			if err != nil {
				return Contract{}, err
			}
			ct.format, ct.formatFast = e.schema, e.fast
		}
	}
	if req.ToolCount > 0 && req.Tools != nil {
		ts, err := c.toolSet(req.Tools)
		if err != nil {
			return Contract{}, err
		}
		ct.tools = ts
		if req.ParallelToolCalls != nil && !*req.ParallelToolCalls {
			ct.noParallel = true
		}
		if err := ct.readChoice(req.ToolChoice); err != nil {
			return Contract{}, err
		}
	}
	return ct, nil
}

func (c *Contracts) responseSchema(raw []byte) (*cacheEntry, error) {
	e := c.lookup(cacheKey("response_format\x00", raw), func() *cacheEntry {
		cost := compiledCost(raw)
		if cost > MaxCompiledCost {
			return &cacheEntry{err: tooCostly("response_format.json_schema.schema", cost)}
		}
		s, err := c.compile(raw, "mem://cairn/request/response_format.json")
		if err != nil {
			return &cacheEntry{err: reqErr("response_format.json_schema.schema", err.Error())}
		}
		e := &cacheEntry{schema: s, cost: cost}
		// The direct validator's memory counts too; one that would take
		// the entry past the per-entry bound is not kept.
		if fs := newFastSchema(s); fs != nil && cost+fs.cost <= MaxCompiledCost {
			e.fast, e.cost = fs, cost+fs.cost
		}
		return e
	})
	if e.err != nil {
		return nil, e.err
	}
	return e, nil
}

// routeValidator returns the direct validator of a route's compiled
// schema, building it on first use. It is cached with the request
// schemas, keyed by the schema's address (the entry keeps the schema, so
// the address cannot be reused while the entry lives) and costed like
// them, so that schemas of routes replaced by reloads age out.
func (c *Contracts) routeValidator(s *jsonschema.Schema) *fastSchema {
	e := c.lookup(routeKey(s), func() *cacheEntry {
		e := &cacheEntry{schema: s}
		if fs := newFastSchema(s); fs != nil && fs.cost <= MaxCompiledCost {
			e.fast, e.cost = fs, fs.cost
		}
		return e
	})
	if e.schema != s {
		return nil
	}
	return e.fast
}

// routeKey is the cache key of a route schema: its address and a tag. It
// is not a SHA-256 like the other keys (hashing costs an allocation per
// request); a SHA-256 output equal to it is as likely as a collision.
func routeKey(s *jsonschema.Schema) [32]byte {
	var k [32]byte
	binary.LittleEndian.PutUint64(k[:8], uint64(uintptr(unsafe.Pointer(s))))
	copy(k[8:], "\x00cairn route schema address\x00")
	return k
}

func (c *Contracts) toolSet(raw []byte) (*toolSet, error) {
	if len(raw) > MaxToolsBytes {
		return nil, reqErr("tools", "invalid 'tools': larger than "+strconv.Itoa(MaxToolsBytes>>20)+" MiB")
	}
	e := c.lookup(cacheKey("tools\x00", raw), func() *cacheEntry {
		cost := compiledCost(raw)
		if cost > MaxCompiledCost {
			return &cacheEntry{err: tooCostly("tools", cost)}
		}
		ts, rerr := c.compileTools(raw)
		if rerr != nil {
			return &cacheEntry{err: rerr}
		}
		// The direct validators' memory counts too; if they would take the
		// entry past the per-entry bound, none is kept.
		fastCost := int64(0)
		for _, d := range ts.byName {
			if d.fast != nil {
				fastCost += d.fast.cost
			}
		}
		if cost+fastCost > MaxCompiledCost {
			for _, d := range ts.byName {
				d.fast = nil
			}
			fastCost = 0
		}
		return &cacheEntry{tools: ts, cost: cost + fastCost}
	})
	if e.err != nil {
		return nil, e.err
	}
	return e.tools, nil
}

func tooCostly(param string, cost int64) *RequestError {
	return reqErr(param, "invalid '"+param+"': too large to check: its schemas would keep about "+
		strconv.FormatInt(cost>>20, 10)+" MiB compiled; the limit is "+strconv.Itoa(MaxCompiledCost>>20)+" MiB")
}

func (c *Contracts) compileTools(raw []byte) (*toolSet, *RequestError) {
	ts := &toolSet{byName: make(map[string]*toolDef)}
	var rerr *RequestError
	i := 0
	gjson.Parse(b2s(raw)).ForEach(func(_, t gjson.Result) bool {
		p := "tools[" + strconv.Itoa(i) + "]"
		i++
		switch t.Get("type").Str {
		case "function":
			name, params := t.Get("function.name").Str, t.Get("function.parameters")
			if name == "" && t.Get("name").Type == gjson.String {
				// A Responses API tool names its function at its top level.
				name, params = t.Get("name").Str, t.Get("parameters")
			}
			if name == "" {
				rerr = missing(p + ".function.name")
				return false
			}
			if _, dup := ts.byName[name]; dup {
				rerr = reqErr(p+".function.name", "duplicate function name '"+name+"' in tools")
				return false
			}
			d := &toolDef{name: strings.Clone(name)}
			if ps := params; ps.IsObject() {
				s, err := c.compile([]byte(ps.Raw), "mem://cairn/request/tools/"+strconv.Itoa(i-1)+".json")
				if err != nil {
					rerr = reqErr(p+".function.parameters", err.Error())
					return false
				}
				d.params, d.fast = s, newFastSchema(s)
			}
			ts.byName[d.name] = d
		case "custom":
			name := t.Get("custom.name").Str
			if name == "" {
				name = t.Get("name").Str // Responses API shape
			}
			if name == "" {
				rerr = missing(p + ".custom.name")
				return false
			}
			// The key is the clone too: name aliases the request body,
			// which a cached entry must not keep alive (issue 12.8).
			d := &toolDef{name: strings.Clone(name), custom: true}
			ts.byName[d.name] = d
		}
		return true
	})
	if rerr != nil {
		return nil, rerr
	}
	return ts, nil
}

// compile compiles one request-supplied schema within the bounds above. A
// panic in the compiler (untrusted input) becomes an error, not a crash.
func (c *Contracts) compile(raw []byte, id string) (s *jsonschema.Schema, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, errors.New("invalid JSON Schema: the compiler could not process it")
		}
	}()
	if len(raw) > MaxRequestSchemaBytes {
		return nil, errors.New("invalid JSON Schema: larger than " + strconv.Itoa(MaxRequestSchemaBytes>>10) + " KiB")
	}
	if res, _ := jsonscan.Check(raw, MaxRequestSchemaDepth); res == jsonscan.TooDeep {
		return nil, errors.New("invalid JSON Schema: nests deeper than " + strconv.Itoa(MaxRequestSchemaDepth) + " levels")
	}
	if dup := findDupDeep("", gjson.Parse(b2s(raw))); dup != "" {
		// The compiler keeps the last value, some upstreams the first.
		return nil, errors.New("invalid JSON Schema: duplicate key '" + clip(dup) + "'")
	}
	c.stats.compiles.Add(1)
	s, err = configs.CompileSchema(raw, id)
	if err != nil {
		return nil, errors.New(compileMessage(err, id))
	}
	if err := checkComplexity(s); err != nil {
		return nil, errors.New("invalid JSON Schema: " + err.Error())
	}
	return s, nil
}

// compileMessage turns a compile error into a short message without the
// internal schema URL.
func compileMessage(err error, id string) string {
	if errors.Is(err, configs.ErrExternalRef) {
		return "invalid JSON Schema: remote and file $ref are not allowed"
	}
	var se *jsonschema.SchemaError
	if errors.As(err, &se) {
		var ve *jsonschema.ValidationError
		if errors.As(se.Err, &ve) {
			leaf := ve
			for len(leaf.Causes) > 0 {
				leaf = leaf.Causes[0]
			}
			loc := leaf.InstanceLocation
			if loc == "" {
				loc = "/"
			}
			return clip("invalid JSON Schema at " + loc + ": " + leaf.Message)
		}
		if se.Err != nil {
			err = se.Err
		}
	}
	// Drop the internal document URL; locations stay as "#/…".
	msg := strings.ReplaceAll(err.Error(), id, "")
	msg = strings.ReplaceAll(msg, "jsonschema: ", "")
	msg = strings.TrimPrefix(msg, "compile schema: ")
	return clip("invalid JSON Schema: " + msg)
}

func (ct *Contract) readChoice(raw []byte) error {
	if raw == nil {
		return nil
	}
	v := gjson.Parse(b2s(raw))
	switch {
	case v.Type == gjson.String:
		switch v.Str {
		case "none":
			ct.choice = choiceNone
		case "required":
			ct.choice = choiceRequired
		}
		return nil
	case !v.IsObject():
		return nil
	}
	var name string
	switch v.Get("type").Str {
	case "function":
		if name = v.Get("function.name").Str; name == "" {
			name = v.Get("name").Str // Responses API shape
		}
	case "custom":
		if name = v.Get("custom.name").Str; name == "" {
			name = v.Get("name").Str
		}
	case "allowed_tools":
		if v.Get("allowed_tools.mode").Str == "required" || v.Get("mode").Str == "required" {
			ct.choice = choiceRequired
		}
		return nil
	default:
		return nil
	}
	d := ct.tools.byName[name]
	if d == nil {
		return reqErr("tool_choice", "tool_choice names '"+clip(name)+"', which is not among the tools")
	}
	ct.choice, ct.choiceName = choiceNamed, d.name
	return nil
}
