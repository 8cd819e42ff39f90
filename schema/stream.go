package schema

import (
	"math"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Bounds of what a StreamAccumulator keeps. Beyond them it stops growing
// and reports Truncated; a contract then fails with a reason saying so.
const (
	// MaxAccumulatedBytes bounds the content, refusal and all tool-call
	// arguments together.
	MaxAccumulatedBytes = 16 << 20
	// MaxToolCalls bounds the tool calls tracked in one message.
	MaxToolCalls = 128
)

// ToolCall is one tool call of a final message.
type ToolCall struct {
	// Index is the call's position: the stream's tool_calls[].index, or the
	// position in message.tool_calls.
	Index int
	ID    string
	// Type is "function" (also when the stream did not say) or "custom".
	Type string
	Name string
	// Arguments is function.arguments (for a custom tool, custom.input)
	// concatenated across fragments.
	Arguments string
}

type callAcc struct {
	index    int
	id, name []byte
	typ      string
	args     []byte
}

// StreamAccumulator folds the data of chat.completion.chunk events into the
// final message of choice 0: content, refusal, tool calls by index (id,
// name and concatenated arguments), the legacy delta.function_call,
// finish_reason, usage (from the usage chunk), the response id and model,
// and an error event. Chunks that are not JSON objects are counted and
// otherwise ignored.
//
// The zero value is ready to use. Add copies what it keeps, so event data
// may be reused after Add returns. A StreamAccumulator is not safe for
// concurrent use; Reset makes it reusable for the next stream.
type StreamAccumulator struct {
	content, refusal []byte
	calls            []callAcc
	legacy           bool
	legacy2          callAcc // the legacy function_call
	finish           string
	usage            Usage
	hasUsage         bool
	model, id        string
	errRaw           []byte
	chunks, bad      int
	size             int
	truncated        bool
	// responses: the events are the Responses API's typed events
	// (responses_stream.go), not chat.completion.chunk objects.
	responses bool
}

// Reset clears the accumulator for a new stream, keeping its buffers
// unless they grew large.
func (a *StreamAccumulator) Reset() {
	calls := a.calls[:0]
	for i := range a.calls {
		a.calls[i] = callAcc{id: keep(a.calls[i].id), name: keep(a.calls[i].name), args: keep(a.calls[i].args)}
	}
	*a = StreamAccumulator{
		content: keep(a.content),
		refusal: keep(a.refusal),
		calls:   calls,
		legacy2: callAcc{name: keep(a.legacy2.name), args: keep(a.legacy2.args)},
		errRaw:  keep(a.errRaw),
	}
}

// keep returns b emptied for reuse, or nil when it is too large to hold on
// to between streams.
func keep(b []byte) []byte {
	if cap(b) > 64<<10 {
		return nil
	}
	return b[:0]
}

// Add folds one event's data (a chat.completion.chunk, a usage chunk or an
// error object) into the message. data is not retained.
func (a *StreamAccumulator) Add(data []byte) {
	if a.responses {
		a.addResponsesEvent(data)
		return
	}
	top, ok := a.topObject(data)
	if !ok {
		return
	}
	top.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "id", "model", "usage":
			a.noteHead(k.Str, v, math.MaxInt)
		case "error":
			if v.Type != gjson.Null && len(a.errRaw) == 0 {
				a.errRaw = append(a.errRaw, v.Raw...)
			}
		case "choices":
			if v.IsArray() {
				v.ForEach(func(_, c gjson.Result) bool {
					if c.IsObject() && c.Get("index").Int() == 0 {
						a.addChoice(c)
						return false
					}
					return true
				})
			}
		}
		return true
	})
}

func (a *StreamAccumulator) addChoice(c gjson.Result) {
	c.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "finish_reason":
			if v.Type == gjson.String {
				a.finish = strings.Clone(v.Str)
			}
		case "delta":
			if v.IsObject() {
				a.addDelta(v)
			}
		}
		return true
	})
}

func (a *StreamAccumulator) addDelta(d gjson.Result) {
	d.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "content":
			if v.Type == gjson.String {
				a.content = a.appendString(a.content, v)
			}
		case "refusal":
			if v.Type == gjson.String {
				a.refusal = a.appendString(a.refusal, v)
			}
		case "tool_calls":
			if v.IsArray() {
				v.ForEach(func(_, tc gjson.Result) bool {
					if tc.IsObject() {
						a.addToolCall(tc)
					}
					return true
				})
			}
		case "function_call":
			if v.IsObject() {
				a.legacy = true
				a.addFunction(&a.legacy2, v)
			}
		}
		return true
	})
}

func (a *StreamAccumulator) addToolCall(tc gjson.Result) {
	idx := -1
	var id, typ gjson.Result
	tc.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "index":
			if v.Type == gjson.Number && v.Num >= 0 && v.Num < 1<<20 {
				idx = int(v.Num)
			}
		case "id":
			id = v
		case "type":
			typ = v
		}
		return true
	})
	c := a.call(idx, id.Type == gjson.String && id.Str != "")
	if c == nil {
		return
	}
	if id.Type == gjson.String && len(c.id) == 0 {
		c.id = append(c.id, id.Str...)
	}
	if typ.Type == gjson.String && c.typ == "" {
		switch typ.Str {
		case "function":
			c.typ = "function"
		case "custom":
			c.typ = "custom"
		default:
			c.typ = strings.Clone(typ.Str)
		}
	}
	if fn := tc.Get("function"); fn.IsObject() {
		a.addFunction(c, fn)
	}
	if cu := tc.Get("custom"); cu.IsObject() {
		if c.typ == "" {
			c.typ = "custom"
		}
		a.addNamed(c, cu.Get("name"), cu.Get("input"))
	}
}

// call finds the call with stream index idx, adding it if new. A fragment
// without an index continues the last call unless it carries a new id.
func (a *StreamAccumulator) call(idx int, hasID bool) *callAcc {
	if idx < 0 {
		if len(a.calls) > 0 && !hasID {
			return &a.calls[len(a.calls)-1]
		}
		idx = 0
		for _, c := range a.calls {
			idx = max(idx, c.index+1)
		}
	}
	for i := range a.calls {
		if a.calls[i].index == idx {
			return &a.calls[i]
		}
	}
	if len(a.calls) >= MaxToolCalls {
		a.truncated = true
		return nil
	}
	if len(a.calls) < cap(a.calls) {
		a.calls = a.calls[:len(a.calls)+1]
		c := &a.calls[len(a.calls)-1]
		c.index, c.typ = idx, ""
		return c
	}
	a.calls = append(a.calls, callAcc{index: idx})
	return &a.calls[len(a.calls)-1]
}

func (a *StreamAccumulator) addFunction(c *callAcc, fn gjson.Result) {
	var name, args gjson.Result
	fn.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "name":
			name = v
		case "arguments":
			args = v
		}
		return true
	})
	a.addNamed(c, name, args)
}

func (a *StreamAccumulator) addNamed(c *callAcc, name, args gjson.Result) {
	if name.Type == gjson.String && name.Str != "" {
		// OpenAI sends the name once; some servers repeat it in every
		// fragment, a few split it. Append only what is new.
		if len(c.name) == 0 || string(c.name) != name.Str {
			if len(c.name) > 0 && strings.HasPrefix(name.Str, string(c.name)) {
				c.name = c.name[:0]
			}
			c.name = a.appendString(c.name, name)
		}
	}
	if args.Type == gjson.String {
		c.args = a.appendString(c.args, args)
	} else if args.IsObject() {
		// A few servers send arguments as an object, not a string.
		c.args = a.appendRaw(c.args, args.Raw)
	}
}

func (a *StreamAccumulator) appendString(dst []byte, v gjson.Result) []byte {
	if a.size+len(v.Raw) > MaxAccumulatedBytes {
		a.truncated = true
		return dst
	}
	n := len(dst)
	dst = appendUnquote(dst, v.Raw)
	a.size += len(dst) - n
	return dst
}

func (a *StreamAccumulator) appendRaw(dst []byte, raw string) []byte {
	if a.size+len(raw) > MaxAccumulatedBytes {
		a.truncated = true
		return dst
	}
	a.size += len(raw)
	return append(dst, raw...)
}

// Content returns the accumulated content of choice 0.
func (a *StreamAccumulator) Content() string { return string(a.content) }

// Refusal returns the accumulated refusal of choice 0.
func (a *StreamAccumulator) Refusal() string { return string(a.refusal) }

// ToolCalls returns the tool calls of choice 0 in index order.
func (a *StreamAccumulator) ToolCalls() []ToolCall {
	if len(a.calls) == 0 {
		return nil
	}
	out := make([]ToolCall, len(a.calls))
	for i, c := range a.calls {
		typ := c.typ
		if typ == "" {
			typ = "function"
		}
		out[i] = ToolCall{Index: c.index, ID: string(c.id), Type: typ, Name: string(c.name), Arguments: string(c.args)}
	}
	slices.SortFunc(out, func(x, y ToolCall) int { return x.Index - y.Index })
	return out
}

// FinishReason returns the last finish_reason of choice 0, "" if none came
// (a stream cut short).
func (a *StreamAccumulator) FinishReason() string { return a.finish }

// Usage returns the usage chunk's figures; ok is false if none arrived.
func (a *StreamAccumulator) Usage() (Usage, bool) { return a.usage, a.hasUsage }

// Model returns the response's model (the first chunk that named one).
func (a *StreamAccumulator) Model() string { return a.model }

// ID returns the response's id (chatcmpl-…), "" if none.
func (a *StreamAccumulator) ID() string { return a.id }

// LegacyFunctionCall reports whether a delta used the legacy function_call
// form instead of tool_calls.
func (a *StreamAccumulator) LegacyFunctionCall() bool { return a.legacy }

// Err returns the raw value of an error event's "error" (usually an
// object), or nil if none arrived. It aliases the accumulator's buffer until
// Reset.
func (a *StreamAccumulator) Err() []byte {
	if len(a.errRaw) == 0 {
		return nil
	}
	return a.errRaw
}

// Chunks returns how many events were added and how many of them were not
// JSON objects.
func (a *StreamAccumulator) Chunks() (total, malformed int) { return a.chunks, a.bad }

// Truncated reports whether the accumulator stopped growing at
// MaxAccumulatedBytes or MaxToolCalls.
func (a *StreamAccumulator) Truncated() bool { return a.truncated }

// IsUsageOnlyChunk reports whether data is the chunk stream_options.
// include_usage adds before [DONE]: "choices" is an empty array and "usage"
// is an object. The proxy strips it when the client did not ask for it.
func IsUsageOnlyChunk(data []byte) bool {
	top, _ := parseTop(data)
	if !top.IsObject() {
		return false
	}
	var emptyChoices, usage bool
	top.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "choices":
			emptyChoices = v.IsArray() && isEmptyArray(v.Raw)
		case "usage":
			usage = v.IsObject()
		}
		return true
	})
	return emptyChoices && usage
}

// appendUnquote appends the value of the JSON string literal raw (with its
// quotes) to dst. It never fails: a malformed escape is copied as it is and
// a lone surrogate becomes U+FFFD, as encoding/json does.
func appendUnquote(dst []byte, raw string) []byte {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		raw = raw[1 : len(raw)-1]
	}
	for len(raw) > 0 {
		i := strings.IndexByte(raw, '\\')
		if i < 0 {
			return append(dst, raw...)
		}
		dst = append(dst, raw[:i]...)
		raw = raw[i:]
		if len(raw) < 2 {
			return append(dst, raw...)
		}
		switch c := raw[1]; c {
		case '"', '\\', '/':
			dst = append(dst, c)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(raw[2:])
			if !ok {
				dst = append(dst, raw[:2]...)
				raw = raw[2:]
				continue
			}
			raw = raw[6:]
			if utf16.IsSurrogate(r) {
				r2, ok2 := rune(-1), false
				if len(raw) >= 6 && raw[0] == '\\' && raw[1] == 'u' {
					r2, ok2 = hex4(raw[2:])
				}
				if ok2 {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						raw = raw[6:]
						dst = utf8.AppendRune(dst, d)
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			dst = append(dst, raw[:2]...)
		}
		raw = raw[2:]
	}
	return dst
}

func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for i := range 4 {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
