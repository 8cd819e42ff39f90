package proxy

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
)

// Allocation discipline of the request path (issue 15): a request through
// the gateway used to cost ~50 heap allocations; these helpers keep the
// per-request state in as few as possible.

// exchangeBox holds what an exchange's record owns: the record, its raw
// bodies, the span, the first attempt's room and the temperature, in one
// allocation where there were five. The record outlives the handler (the
// capture writer owns it after finish), so the box is not pooled; the
// exchange itself is (exchanges), and nothing of the record points into
// it.
type exchangeBox struct {
	rec         capture.Record
	raw         capture.RawBodies
	span        capture.Span
	att         [1]capture.Attempt // the first attempt's room in rec.Attempts
	temperature float64            // rec.Params.Temperature points here
}

// exchanges recycles exchanges: finish puts one back once its record went
// to capture, and nothing uses an exchange after finish.
var exchanges = sync.Pool{New: func() any { return new(exchange) }}

// setRaw points the record at the exchange's raw bodies, set to rb.
func (x *exchange) setRaw(rb capture.RawBodies) {
	*x.rawBox = rb
	x.rec.Raw = x.rawBox
}

// maxInterned bounds the header values valueCache keeps.
const maxInterned = 256

// valueCache interns request header values that repeat from request to
// request (user agents, content types, client names), so that recording
// them costs no allocation once seen. It is a fixed table of slots chosen
// by hash: a value that collides replaces the slot's, so memory is bounded
// whatever clients send (1024 values of at most 256 bytes). Safe for
// concurrent use.
type valueCache struct {
	seed  maphash.Seed
	slots [1024]atomic.Pointer[string]
}

func newValueCache() *valueCache { return &valueCache{seed: maphash.MakeSeed()} }

// intern returns b as a string, shared with earlier calls for the same
// bytes while the value holds its slot.
func (c *valueCache) intern(b []byte) string {
	if len(b) > maxInterned {
		return string(b)
	}
	slot := &c.slots[maphash.Bytes(c.seed, b)%uint64(len(c.slots))]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}

// recordedHeaders are the request headers a record keeps.
var recordedHeaders = [...]string{"user-agent", "x-client-name", "x-client-request-id", "x-request-id", "content-type"}

// recordHeaders returns the recorded headers present in h; nil when none
// is. Values come from c, except the client's request IDs, which are
// unique per request.
func (c *valueCache) recordHeaders(h *fasthttp.RequestHeader) map[string]string {
	var m map[string]string
	for _, n := range recordedHeaders {
		v := h.Peek(n)
		if len(v) == 0 {
			continue
		}
		if m == nil {
			m = make(map[string]string, len(recordedHeaders))
		}
		if n == "x-client-request-id" || n == "x-request-id" {
			m[n] = string(v)
		} else {
			m[n] = c.intern(v)
		}
	}
	return m
}

// setTargetHeader sets x-cairn-target to provider/model without building
// the string (SetBytesV copies from the stack buffer).
func setTargetHeader(h *fasthttp.ResponseHeader, provider, model string) {
	var buf [256]byte
	b := append(buf[:0], provider...)
	b = append(b, '/')
	b = append(b, model...)
	h.SetBytesV("x-cairn-target", b)
}

// userHashCache remembers the keyed hashes of recent user values: a
// user's requests come in runs, and the HMAC and its string are then paid
// once per run instead of per request. Fixed slots chosen by hash, as in
// valueCache; the raw values stay in the gateway's memory only. Safe for
// concurrent use.
type userHashCache struct {
	h     *capture.UserHasher
	seed  maphash.Seed
	slots [1024]atomic.Pointer[userHashEntry]
}

type userHashEntry struct{ user, sum string }

func newUserHashCache(h *capture.UserHasher) *userHashCache {
	return &userHashCache{h: h, seed: maphash.MakeSeed()}
}

// Sum is h.Sum(user), from the cache when user holds its slot.
func (c *userHashCache) Sum(user string) string {
	if user == "" || len(user) > maxInterned {
		return c.h.Sum(user)
	}
	slot := &c.slots[maphash.String(c.seed, user)%uint64(len(c.slots))]
	if e := slot.Load(); e != nil && e.user == user {
		return e.sum
	}
	sum := c.h.Sum(user)
	slot.Store(&userHashEntry{user: user, sum: sum})
	return sum
}

// rewriteBufs holds the buffers non-streaming upstream request bodies are
// written into; HostClient.DoTimeout is done with a body when it returns.
var rewriteBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledRewrite bounds the buffers put back into rewriteBufs.
const maxPooledRewrite = 2 << 20 // a 1 MB request and its edits
