package schema

import (
	"sync"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/internal/jsonscan"
)

// Reply is what one pass over a non-streaming response body (a
// chat.completion or an embeddings list) found: the provider's response
// ID, the usage, and where choices[0] is. The contract check, the usage
// read and the request-ID fallback share it instead of each parsing the
// body again (issue 15). A Reply holds offsets, not bytes: use it only
// with the body it was read from or a byte-identical copy.
type Reply struct {
	// Usage is "usage"; HasUsage is false when it is absent or not an
	// object.
	Usage    Usage
	HasUsage bool

	idStart, idEnd         int // raw "id" string token, or 0, 0
	choiceStart, choiceEnd int // choices[0], or 0, 0
}

// ReadReply reads body's top-level object once. body is only read and
// not retained.
func ReadReply(body []byte) Reply {
	var r Reply
	var seen uint8 // the first of repeated keys counts, as with gjson's Get
	jsonscan.EachMember(body, 0, func(key []byte, vs, ve int) bool {
		switch string(key) {
		case `"id"`:
			if seen&1 == 0 && body[vs] == '"' {
				r.idStart, r.idEnd = vs, ve
			}
			seen |= 1
		case `"usage"`:
			if seen&2 == 0 {
				r.Usage, r.HasUsage = usageOf(gjson.Parse(b2s(body[vs:ve])))
			}
			seen |= 2
		case `"choices"`:
			if seen&4 == 0 {
				if s, e, ok := jsonscan.FirstElement(body[:ve], vs); ok {
					r.choiceStart, r.choiceEnd = s, e
				}
			}
			seen |= 4
		}
		return true
	})
	return r
}

// ID returns the response's "id" (a copy) when it is a non-empty string of
// at most 256 bytes, else "".
func (r *Reply) ID(body []byte) string {
	if r.idEnd-r.idStart < 3 || r.idEnd > len(body) {
		return ""
	}
	v := gjson.Parse(b2s(body[r.idStart:r.idEnd]))
	if v.Type != gjson.String || v.Str == "" || len(v.Str) > 256 {
		return ""
	}
	return string(v.Str) // v.Str may alias body: copy
}

// contentBufs holds the buffers message content is unquoted into for one
// check; nothing of a check keeps them.
var contentBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledContent bounds the buffers put back into contentBufs.
const maxPooledContent = 1 << 20

// CheckReply judges choices[0].message of body (the body r was read from,
// or a copy of it) as CheckMessage does, without parsing the body's top
// level again. Safe for concurrent use; body is only read.
func (c Contract) CheckReply(body []byte, r *Reply) Verdict {
	if c.Empty() {
		return Verdict{Result: ResultNone}
	}
	var m message
	if r.choiceEnd <= r.choiceStart || r.choiceEnd > len(body) {
		m.noMessage = true
		return c.check(&m)
	}
	ch := body[r.choiceStart:r.choiceEnd]
	msgStart, msgEnd := -1, -1
	jsonscan.EachMember(ch, 0, func(key []byte, vs, ve int) bool {
		switch string(key) {
		case `"message"`:
			if msgStart < 0 { // the first, as gjson's Get would
				msgStart, msgEnd = vs, ve
			}
		case `"finish_reason"`:
			// m.finish may alias body: it is only compared during the check.
			if f := gjson.Parse(b2s(ch[vs:ve])); f.Type == gjson.String && m.finish == "" {
				m.finish = f.Str
			}
		}
		return true
	})
	if msgStart < 0 || ch[msgStart] != '{' {
		m.noMessage = true
		return c.check(&m)
	}
	bp := contentBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledContent {
			*bp = (*bp)[:0]
			contentBufs.Put(bp)
		}
	}()
	msg := ch[msgStart:msgEnd]
	jsonscan.EachMember(msg, 0, func(key []byte, vs, ve int) bool {
		raw := b2s(msg[vs:ve])
		switch string(key) {
		case `"content"`:
			switch raw[0] {
			case '"':
				*bp = appendUnquote((*bp)[:0], raw)
				m.content = *bp
			case '[': // content parts
				gjson.Parse(raw).ForEach(func(_, part gjson.Result) bool {
					if t := part.Get("text"); t.Type == gjson.String {
						m.content = appendUnquote(m.content, t.Raw)
					}
					return true
				})
			}
		case `"refusal"`:
			m.refusal = raw[0] == '"' && len(raw) > 2
		case `"tool_calls"`:
			i := 0
			gjson.Parse(raw).ForEach(func(_, tc gjson.Result) bool {
				m.calls = append(m.calls, readCall(i, tc))
				i++
				return true
			})
		case `"function_call"`:
			m.legacy = raw[0] == '{'
		}
		return true
	})
	return c.check(&m)
}
