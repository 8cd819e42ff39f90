package loadtest

import (
	"github.com/cairnhq/cairn/internal/jsonstr"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// maxSchemaDepth and maxSchemaNodes bound recursion through nested and
// self-referencing schemas (a request's schema is untrusted input).
const (
	maxSchemaDepth = 24
	maxSchemaNodes = 10000
	maxGenItems    = 1000    // array items generated at most
	maxGenString   = 1 << 16 // string length generated at most
)

// appendInstance appends a JSON value satisfying schema (see
// instanceGen.append for the subset handled).
func appendInstance(dst []byte, schema gjson.Result) []byte {
	g := instanceGen{root: schema}
	return g.append(dst, schema, 0, 0)
}

// instanceGen generates instances of one root schema; $refs resolve
// against root.
type instanceGen struct {
	root  gjson.Result
	nodes int
}

// append appends a JSON value satisfying schema s. It handles the subset of JSON Schema that tool
// parameters and response formats use: type (also as a list), properties
// and required (every property is filled), items and prefixItems, enum
// (first value) and const, anyOf/oneOf (first non-null branch), allOf
// (merged objects), numeric bounds and multipleOf, string lengths, common
// formats and simple patterns. nth > 0 varies leaf values so that array
// items can be unique.
func (g *instanceGen) append(dst []byte, s gjson.Result, depth, nth int) []byte {
	g.nodes++
	if depth > maxSchemaDepth || g.nodes > maxSchemaNodes {
		return append(dst, "null"...)
	}
	if !s.Exists() {
		return appendJSONString(dst, "ok")
	}
	switch s.Type {
	case gjson.True:
		return appendJSONString(dst, "ok")
	case gjson.False, gjson.Null:
		return append(dst, "null"...)
	}
	if !s.IsObject() {
		return appendJSONString(dst, "ok")
	}
	if ref := s.Get(`\$ref`); ref.Exists() {
		if t, ok := resolveRef(g.root, ref.Str); ok {
			return g.append(dst, t, depth+1, nth)
		}
	}
	if c := s.Get("const"); c.Exists() {
		return append(dst, c.Raw...)
	}
	if e := s.Get("enum"); e.IsArray() {
		if vals := e.Array(); len(vals) > 0 {
			return append(dst, vals[nth%len(vals)].Raw...)
		}
	}
	for _, key := range [...]string{"anyOf", "oneOf"} {
		if alts := s.Get(key).Array(); len(alts) > 0 {
			pick := alts[0]
			for _, a := range alts {
				if a.Get("type").Str != "null" {
					pick = a
					break
				}
			}
			return g.append(dst, pick, depth+1, nth)
		}
	}

	typ := schemaType(s)
	if all := s.Get("allOf").Array(); len(all) > 0 {
		if typ == "" || typ == "object" {
			parts := make([]gjson.Result, 0, len(all)+1)
			parts = append(parts, s)
			for _, a := range all {
				if ref := a.Get(`\$ref`); ref.Exists() {
					if t, ok := resolveRef(g.root, ref.Str); ok {
						a = t
					}
				}
				parts = append(parts, a)
			}
			if typ == "object" || hasObjectHints(parts) {
				return g.appendObject(dst, parts, depth, nth)
			}
		}
		if typ == "" {
			return g.append(dst, all[0], depth+1, nth)
		}
	}
	switch typ {
	case "object":
		return g.appendObject(dst, []gjson.Result{s}, depth, nth)
	case "array":
		return g.appendArray(dst, s, depth, nth)
	case "string":
		return appendJSONString(dst, genString(s, nth))
	case "integer":
		return strconv.AppendInt(dst, genInteger(s, nth), 10)
	case "number":
		return strconv.AppendFloat(dst, genNumber(s, nth), 'g', -1, 64)
	case "boolean":
		return append(dst, "true"...)
	case "null":
		return append(dst, "null"...)
	}
	return appendJSONString(dst, genString(s, nth))
}

// schemaType returns the schema's type, the first non-null of a type
// list, or one inferred from its keywords ("" when nothing says).
func schemaType(s gjson.Result) string {
	t := s.Get("type")
	if t.Type == gjson.String {
		return t.Str
	}
	if t.IsArray() {
		types := t.Array()
		for _, x := range types {
			if x.Str != "null" {
				return x.Str
			}
		}
		if len(types) > 0 {
			return "null"
		}
	}
	switch {
	case hasObjectHints([]gjson.Result{s}):
		return "object"
	case s.Get("items").Exists() || s.Get("prefixItems").Exists() || s.Get("minItems").Exists():
		return "array"
	case s.Get("minimum").Exists() || s.Get("maximum").Exists() || s.Get("exclusiveMinimum").Exists() || s.Get("multipleOf").Exists():
		return "number"
	case s.Get("minLength").Exists() || s.Get("maxLength").Exists() || s.Get("pattern").Exists() || s.Get("format").Exists():
		return "string"
	}
	return ""
}

func hasObjectHints(parts []gjson.Result) bool {
	for _, p := range parts {
		if p.Get("properties").Exists() || p.Get("required").Exists() || p.Get("additionalProperties").Exists() || p.Get("type").Str == "object" {
			return true
		}
	}
	return false
}

// resolveRef resolves a local reference ("#", "#/$defs/x", any JSON
// pointer into root).
func resolveRef(root gjson.Result, ref string) (gjson.Result, bool) {
	if ref == "#" {
		return root, true
	}
	ptr, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return gjson.Result{}, false
	}
	cur := root
	for tok := range strings.SplitSeq(ptr, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		cur = cur.Get(gjson.Escape(tok))
		if !cur.Exists() {
			return gjson.Result{}, false
		}
	}
	return cur, true
}

// appendObject appends an object with every property of parts (in order,
// first definition wins) and every required name.
func (g *instanceGen) appendObject(dst []byte, parts []gjson.Result, depth, nth int) []byte {
	dst = append(dst, '{')
	seen := map[string]bool{}
	emit := func(name string, schema gjson.Result) {
		if seen[name] {
			return
		}
		if len(seen) > 0 {
			dst = append(dst, ',')
		}
		seen[name] = true
		dst = appendJSONString(dst, name)
		dst = append(dst, ':')
		dst = g.append(dst, schema, depth+1, nth)
	}
	for _, p := range parts {
		p.Get("properties").ForEach(func(k, v gjson.Result) bool {
			emit(k.String(), v)
			return true
		})
	}
	for _, p := range parts {
		for _, r := range p.Get("required").Array() {
			if !seen[r.Str] {
				// Required but undefined: use additionalProperties' schema if any.
				emit(r.Str, p.Get("additionalProperties"))
			}
		}
	}
	minProps := 0
	for _, p := range parts {
		minProps = max(minProps, int(p.Get("minProperties").Int()))
	}
	for i := 0; len(seen) < minProps && i < 64; i++ {
		emit("extra"+strconv.Itoa(i), parts[0].Get("additionalProperties"))
	}
	return append(dst, '}')
}

// appendArray appends max(minItems, 1) items (capped by maxItems).
func (g *instanceGen) appendArray(dst []byte, s gjson.Result, depth, nth int) []byte {
	n := min(max(1, int(s.Get("minItems").Int())), maxGenItems)
	prefix := s.Get("prefixItems").Array()
	items := s.Get("items")
	if items.IsArray() { // draft 4-7 tuple form
		prefix, items = items.Array(), s.Get("additionalItems")
	}
	n = min(max(n, len(prefix)), maxGenItems)
	if mx := s.Get("maxItems"); mx.Exists() {
		n = min(n, int(mx.Int()))
	}
	unique := s.Get("uniqueItems").Bool()
	dst = append(dst, '[')
	for i := range n {
		if i > 0 {
			dst = append(dst, ',')
		}
		k := nth
		if unique {
			k = nth + i
		}
		if i < len(prefix) {
			dst = g.append(dst, prefix[i], depth+1, k)
		} else {
			dst = g.append(dst, items, depth+1, k)
		}
	}
	return append(dst, ']')
}

// genString returns a string meeting format, length and (if it can)
// pattern constraints.
func genString(s gjson.Result, nth int) string {
	v := "ok"
	switch s.Get("format").Str {
	case "date-time":
		v = "2026-01-01T00:00:00Z"
	case "date":
		v = "2026-01-01"
	case "time":
		v = "12:00:00Z"
	case "duration":
		v = "PT1S"
	case "email", "idn-email":
		v = "user@example.com"
	case "hostname", "idn-hostname":
		v = "example.com"
	case "ipv4":
		v = "192.0.2.1"
	case "ipv6":
		v = "2001:db8::1"
	case "uri", "iri", "uri-reference", "iri-reference", "url":
		v = "https://example.com/"
	case "uuid":
		v = "00000000-0000-4000-8000-000000000000"
	}
	if nth > 0 {
		v += strconv.Itoa(nth)
	}
	if p := s.Get("pattern"); p.Exists() {
		v = matchPattern(p.Str, v, nth)
	}
	if minLen := min(int(s.Get("minLength").Int()), maxGenString); utf8.RuneCountInString(v) < minLen {
		v += strings.Repeat("x", minLen-utf8.RuneCountInString(v))
	}
	if mx := s.Get("maxLength"); mx.Exists() && utf8.RuneCountInString(v) > int(mx.Int()) {
		v = string([]rune(v)[:max(0, int(mx.Int()))])
	}
	return v
}

// matchPattern returns v if it matches pattern, else the first of a few
// candidates that does, else v.
func matchPattern(pattern, v string, nth int) string {
	re, err := regexp.Compile(pattern)
	if err != nil || re.MatchString(v) {
		return v
	}
	suffix := ""
	if nth > 0 {
		suffix = strconv.Itoa(nth)
	}
	for _, c := range [...]string{"a", "A", "0", "1", "abc", "ABC", "123", "a1", "A1", "abc123", "ok", "x-1", "2026-01-01", "user@example.com", "https://example.com/", "ABC-123"} {
		if re.MatchString(c + suffix) {
			return c + suffix
		}
		if re.MatchString(c) {
			return c
		}
	}
	return v
}

// numBounds returns the inclusive-ish bounds: lo/hi and whether each is
// exclusive.
func numBounds(s gjson.Result) (lo, hi float64, hasLo, hasHi, exLo, exHi bool) {
	if m := s.Get("minimum"); m.Exists() {
		lo, hasLo = m.Float(), true
	}
	if m := s.Get("exclusiveMinimum"); m.Type == gjson.Number {
		if !hasLo || m.Float() >= lo {
			lo, hasLo, exLo = m.Float(), true, true
		}
	} else if m.Type == gjson.True && hasLo { // draft 4 boolean form
		exLo = true
	}
	if m := s.Get("maximum"); m.Exists() {
		hi, hasHi = m.Float(), true
	}
	if m := s.Get("exclusiveMaximum"); m.Type == gjson.Number {
		if !hasHi || m.Float() <= hi {
			hi, hasHi, exHi = m.Float(), true, true
		}
	} else if m.Type == gjson.True && hasHi {
		exHi = true
	}
	return
}

func genInteger(s gjson.Result, nth int) int64 {
	lo, hi, hasLo, hasHi, exLo, exHi := numBounds(s)
	l, h := int64(math.MinInt32), int64(math.MaxInt32)
	if hasLo {
		l = int64(math.Ceil(lo))
		if exLo && float64(l) == lo {
			l++
		}
	}
	if hasHi {
		h = int64(math.Floor(hi))
		if exHi && float64(h) == hi {
			h--
		}
	}
	v := int64(1 + nth)
	switch {
	case hasLo && hasHi:
		v = l + (h-l)/2 + int64(nth)
	case hasLo:
		v = max(v, l+int64(nth))
	case hasHi:
		v = min(v, h-int64(nth))
	}
	if m := s.Get("multipleOf").Int(); m > 0 {
		v = (v + m - 1) / m * m
		if v > h {
			v -= m
		}
	}
	return min(max(v, l), h)
}

func genNumber(s gjson.Result, nth int) float64 {
	lo, hi, hasLo, hasHi, exLo, exHi := numBounds(s)
	v := 0.5 + float64(nth)
	switch {
	case hasLo && hasHi:
		v = lo + (hi-lo)/2
		if nth > 0 {
			v = lo + (hi-lo)*float64(nth%8+1)/10
		}
	case hasLo:
		v = lo + 0.5 + float64(nth)
		if !exLo {
			v = lo + float64(nth)
		}
	case hasHi:
		v = hi - 0.5 - float64(nth)
		if !exHi {
			v = hi - float64(nth)
		}
	}
	if m := s.Get("multipleOf").Float(); m > 0 {
		v = math.Ceil(v/m) * m
		if hasHi && (v > hi || (exHi && v == hi)) {
			v -= m
		}
		if hasLo && (v < lo || (exLo && v == lo)) {
			v += m
		}
	}
	return v
}

// appendJSONString appends s as a JSON string literal; invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(dst []byte, s string) []byte { return jsonstr.Append(dst, s) }
