package capture

import (
	"bytes"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/cairnhq/cairn/configs"
)

// MinSecretLen is the shortest secret Secrets replaces. A shorter value
// (a four-letter Redis password, say) would be replaced inside ordinary
// words of every body and log line; such values are not protected by exact
// matching and configs should not use them.
const MinSecretLen = 8

// Secrets finds and replaces exact occurrences of the gateway's own secrets
// (provider keys, gateway keys, the admin token, secret-bearing headers,
// the Redis password) in bytes about to leave the process: response bodies
// and headers, SSE events, records, logs, incidents and admin answers.
//
// A secret is found in any form a JSON string can carry it: plain, with any
// of its characters written as \uXXXX (surrogate pairs included), or with
// '/' written as \/ and the other short escapes. Matching walks a trie of
// the secrets from every byte that can start one (a first-byte index), so
// text without such bytes costs one table lookup per byte and no
// allocation (see BenchmarkSecretsRedact).
//
// A Secrets is immutable after NewSecrets and safe for concurrent use. The
// zero value and nil hold no secrets.
type Secrets struct {
	// first marks the bytes a match can start with: the first byte of
	// every secret, and '\\' when there is any secret.
	first [256]bool
	root  [256]int32 // the root's children (0: none)
	// pairs[a<<8|b] says a match may start with the raw bytes a, b: the
	// first two bytes of a secret, or a pair holding a backslash (an
	// escape may follow). It rules out most first-byte candidates
	// without decoding.
	pairs []bool
	// firstList lists the bytes of first when there are few of them:
	// find then jumps between their occurrences with bytes.IndexByte
	// (vectorised) instead of testing every byte.
	firstList []byte
	nodes     []secretNode
	n         int
	maxLen    int // the longest secret
	// values are the secrets, for union and tests.
	values []string
	// tokenish: every secret is made of token bytes and holds a letter
	// (see verbatimSafe).
	tokenish bool
}

// secretNode is a trie node below the root.
type secretNode struct {
	edges []secretEdge
	end   bool // a secret ends here
}

type secretEdge struct {
	b  byte
	to int32
}

// NewSecrets builds the matcher for values. Values shorter than
// MinSecretLen and duplicates are ignored.
func NewSecrets(values ...string) *Secrets {
	s := &Secrets{nodes: make([]secretNode, 1)}
	seen := map[string]bool{}
	for _, v := range values {
		if len(v) < MinSecretLen || seen[v] {
			continue
		}
		seen[v] = true
		s.values = append(s.values, v)
		s.maxLen = max(s.maxLen, len(v))
		s.add(v)
	}
	slices.Sort(s.values)
	s.tokenish = allTokenish(s.values)
	if s.n > 0 {
		s.first['\\'] = true
		s.pairs = make([]bool, 1<<16)
		for _, v := range s.values {
			s.pairs[int(v[0])<<8|int(v[1])] = true
		}
		for c := range 256 {
			s.pairs['\\'<<8|c] = true
			s.pairs[c<<8|'\\'] = true
		}
		var list []byte
		for c := range 256 {
			if s.first[c] {
				list = append(list, byte(c))
			}
		}
		if len(list) <= maxSparseFirst {
			s.firstList = list
		}
	}
	return s
}

func (s *Secrets) add(v string) {
	s.n++
	s.first[v[0]] = true
	cur := s.root[v[0]]
	if cur == 0 {
		cur = int32(len(s.nodes))
		s.nodes = append(s.nodes, secretNode{})
		s.root[v[0]] = cur
	}
	for i := 1; i < len(v); i++ {
		next := s.child(cur, v[i])
		if next == 0 {
			next = int32(len(s.nodes))
			s.nodes = append(s.nodes, secretNode{})
			s.nodes[cur].edges = append(s.nodes[cur].edges, secretEdge{v[i], next})
		}
		cur = next
	}
	s.nodes[cur].end = true
}

func (s *Secrets) child(n int32, b byte) int32 {
	for _, e := range s.nodes[n].edges {
		if e.b == b {
			return e.to
		}
	}
	return 0
}

// Len returns how many secrets s holds.
func (s *Secrets) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Union returns a Secrets holding the secrets of s and o.
func (s *Secrets) Union(o *Secrets) *Secrets {
	var all []string
	if s != nil {
		all = append(all, s.values...)
	}
	if o != nil {
		all = append(all, o.values...)
	}
	return NewSecrets(all...)
}

// decodeAt decodes one character of b at i as a JSON string would: an
// escape sequence or one raw byte. It appends the decoded bytes to dst and
// returns them with the raw length consumed. A backslash that does not
// start a valid escape is itself.
func decodeAt(dst []byte, b []byte, i int) ([]byte, int) {
	c := b[i]
	if c != '\\' || i+1 >= len(b) {
		return append(dst, c), 1
	}
	switch b[i+1] {
	case '"', '\\', '/':
		return append(dst, b[i+1]), 2
	case 'b':
		return append(dst, '\b'), 2
	case 'f':
		return append(dst, '\f'), 2
	case 'n':
		return append(dst, '\n'), 2
	case 'r':
		return append(dst, '\r'), 2
	case 't':
		return append(dst, '\t'), 2
	case 'u':
		r, ok := secretHex4(b, i+2)
		if !ok {
			return append(dst, c), 1
		}
		if utf16.IsSurrogate(r) {
			if i+11 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
				if r2, ok := secretHex4(b, i+8); ok {
					if p := utf16.DecodeRune(r, r2); p != utf8.RuneError {
						return utf8.AppendRune(dst, p), 12
					}
				}
			}
			return append(dst, c), 1
		}
		return utf8.AppendRune(dst, r), 6
	}
	return append(dst, c), 1
}

func secretHex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c|0x20 >= 'a' && c|0x20 <= 'f':
			d = c | 0x20 - 'a' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// matchAt returns the raw end of the longest secret starting at raw
// offset i, or -1.
func (s *Secrets) matchAt(b []byte, i int) int {
	var small [4]byte
	best := -1
	node := int32(-1) // the root
	for j := i; j < len(b); {
		d, n := decodeAt(small[:0], b, j)
		for _, c := range d {
			if node < 0 {
				node = s.root[c]
			} else {
				node = s.child(node, c)
			}
			if node == 0 {
				return best
			}
		}
		j += n
		if s.nodes[node].end {
			best = j
		}
	}
	return best
}

// find calls fn with the raw span of every secret in b, left to right,
// never overlapping. It stops when fn returns false.
func (s *Secrets) find(b []byte, fn func(start, end int) bool) {
	if s == nil || s.n == 0 {
		return
	}
	if s.firstList != nil {
		s.findSparse(b, fn)
		return
	}
	first, pairs := &s.first, s.pairs
	for i := 0; i < len(b); i++ {
		if !first[b[i]] {
			continue
		}
		if i+1 < len(b) && !pairs[int(b[i])<<8|int(b[i+1])] {
			continue
		}
		if e := s.matchAt(b, i); e > i {
			if !fn(i, e) {
				return
			}
			i = e - 1
		}
	}
}

// maxSparseFirst is the most distinct first bytes findSparse handles.
const maxSparseFirst = 6

// findSparse is find for secrets that start with few distinct bytes.
func (s *Secrets) findSparse(b []byte, fn func(start, end int) bool) {
	var next [maxSparseFirst]int
	list := s.firstList
	from := func(pos int, c byte) int {
		if k := bytes.IndexByte(b[pos:], c); k >= 0 {
			return pos + k
		}
		return len(b)
	}
	for j, c := range list {
		next[j] = from(0, c)
	}
	for {
		i := len(b)
		for j := range list {
			i = min(i, next[j])
		}
		if i == len(b) {
			return
		}
		end := i + 1
		if i+1 >= len(b) || s.pairs[int(b[i])<<8|int(b[i+1])] {
			if e := s.matchAt(b, i); e > i {
				if !fn(i, e) {
					return
				}
				end = e
			}
		}
		for j, c := range list {
			if next[j] < end {
				next[j] = from(end, c)
			}
		}
	}
}

// Contains reports whether b holds any secret.
func (s *Secrets) Contains(b []byte) bool {
	found := false
	s.find(b, func(int, int) bool { found = true; return false })
	return found
}

// ContainsString reports whether str holds any secret.
func (s *Secrets) ContainsString(str string) bool {
	if s == nil || s.n == 0 {
		return false
	}
	return s.Contains(unsafeBytes(str))
}

// Redact returns b with every secret replaced by PlaceholderSecret. When b
// holds none it returns b itself (no copy, no allocation); otherwise a new
// slice, leaving b unchanged.
func (s *Secrets) Redact(b []byte) []byte {
	var out []byte
	last := 0
	s.find(b, func(start, end int) bool {
		if out == nil {
			out = make([]byte, 0, len(b))
		}
		out = append(out, b[last:start]...)
		out = append(out, PlaceholderSecret...)
		last = end
		return true
	})
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

// String is Redact for a string.
func (s *Secrets) String(str string) string {
	if s == nil || s.n == 0 || len(str) < MinSecretLen {
		return str
	}
	b := unsafeBytes(str)
	out := s.Redact(b)
	if len(out) == len(b) && (len(b) == 0 || &out[0] == &b[0]) {
		return str
	}
	return string(out)
}

// unsafeBytes returns the bytes of str without copying; they must not be
// modified (Redact and find only read them).
func unsafeBytes(str string) []byte {
	return unsafe.Slice(unsafe.StringData(str), len(str))
}

// SecretsOf returns the secrets a loaded config holds: provider keys,
// gateway keys read from the environment, the admin token, the values of
// webhook headers and of provider headers whose name says they carry a
// credential, and the password (and user info) in redis_url.
func SecretsOf(c *configs.Config) *Secrets {
	var v []string
	for _, p := range c.Providers {
		v = append(v, p.APIKey)
		for name, val := range p.Headers {
			if secretHeaderName(name) {
				v = append(v, val, strings.TrimPrefix(val, "Bearer "))
			}
		}
	}
	for _, k := range c.Keys {
		v = append(v, k.Secret)
	}
	v = append(v, c.AdminToken)
	for _, w := range c.Notify.Webhooks {
		for _, val := range w.Headers {
			v = append(v, val, strings.TrimPrefix(val, "Bearer "))
		}
	}
	if u, err := url.Parse(c.RedisURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			v = append(v, pw, url.QueryEscape(pw), u.User.String())
		}
	}
	return NewSecrets(v...)
}

// secretHeaderName reports whether a header name says it carries a
// credential (api-key, x-api-key, authorization, …).
func secretHeaderName(name string) bool { return configs.SecretHeaderName(name) }

// Redactor holds the gateway's current Secrets. A reload adds the new
// config's secrets to those already known (a rotated-out key is still a
// secret). Safe for concurrent use; the zero value holds none.
type Redactor struct {
	mu sync.Mutex // serialises Add
	p  atomic.Pointer[Secrets]
}

// Add adds the secrets of s.
func (r *Redactor) Add(s *Secrets) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p.Store(r.p.Load().Union(s))
}

// Secrets returns the current set (nil: none).
func (r *Redactor) Secrets() *Secrets {
	if r == nil {
		return nil
	}
	return r.p.Load()
}

// Bytes is Secrets().Redact.
func (r *Redactor) Bytes(b []byte) []byte { return r.Secrets().Redact(b) }

// String is Secrets().String.
func (r *Redactor) String(s string) string { return r.Secrets().String(s) }

// redactRecord replaces secrets in every client- or provider-supplied
// string of r, its raw bodies and its stored bodies. The writer runs it
// before masking (so a detector never cuts a secret in half and leaves
// the rest) and after (masking unpacks JSON held in strings, which may
// reveal an escaped secret).
func redactRecord(s *Secrets, r *Record) {
	if s.Len() == 0 {
		return
	}
	for _, p := range []*string{&r.GatewayRequestID, &r.ProviderRequestID, &r.ClientRequestID, &r.TraceID, &r.Client,
		&r.Route, &r.Cohort, &r.Provider, &r.Model, &r.RequestedModel, &r.PromptVersion, &r.Release, &r.Error} {
		*p = s.String(*p)
	}
	for i := range r.Attempts {
		a := &r.Attempts[i]
		a.Model, a.Error, a.ProviderRequestID = s.String(a.Model), s.String(a.Error), s.String(a.ProviderRequestID)
	}
	for i := range r.Contract.Reasons {
		r.Contract.Reasons[i] = s.String(r.Contract.Reasons[i])
	}
	for k, v := range r.Headers {
		if c := s.String(v); c != v {
			r.Headers[k] = c
		}
	}
	r.Request, r.Response = s.Redact(r.Request), s.Redact(r.Response)
	if raw := r.Raw; raw != nil {
		if b := s.Redact(raw.RequestBody); !sameBytes(b, raw.RequestBody) {
			// A secret spanning a string's quote would leave the body
			// invalid: the writer checks it again.
			raw.RequestBody, raw.RequestValid = b, false
		}
		raw.ResponseBody = s.Redact(raw.ResponseBody)
		raw.StreamToolCalls = s.Redact(raw.StreamToolCalls)
		raw.StreamContent = s.String(raw.StreamContent)
		raw.FinishReason = s.String(raw.FinishReason)
	}
}

// MaxLen returns the length of the longest secret (0: none).
func (s *Secrets) MaxLen() int {
	if s == nil {
		return 0
	}
	return s.maxLen
}

// EndsWithPrefix reports whether str ends with the first minLen or more
// bytes of a secret (but not a whole one). str is plain text: escapes are
// not decoded. A stream relay holds text back while this holds, so that a
// secret cut across two events is never sent in pieces.
func (s *Secrets) EndsWithPrefix(str string, minLen int) bool {
	if s == nil || s.n == 0 {
		return false
	}
	for start := max(0, len(str)-s.MaxLen()+1); start <= len(str)-minLen; start++ {
		node := s.root[str[start]]
		for j := start + 1; node != 0 && j < len(str); j++ {
			node = s.child(node, str[j])
		}
		if node != 0 {
			return true
		}
	}
	return false
}

// sameBytes reports whether a and b are the same slice (Redact returns its
// argument when it found nothing).
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
