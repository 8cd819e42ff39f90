package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/internal/jsonscan"
)

// MaxValueDepth bounds how deeply content or tool arguments may nest before
// they are refused without being decoded.
const MaxValueDepth = 128

// message is the part of a final message a contract looks at, taken from a
// chat.completion body or from a StreamAccumulator.
type message struct {
	content   []byte
	refusal   bool
	calls     []callView
	legacy    bool
	finish    string
	noMessage bool
	truncated bool
	streamErr bool
}

type callView struct {
	index int
	typ   string
	name  string
	args  []byte
}

// CheckMessage judges a non-streaming chat.completion body: the content,
// tool_calls and function_call of choices[0].message. With an empty
// contract it returns Verdict{Result: "none"} without reading the body.
// Only the content and the tool arguments are decoded, and a json_object
// contract without a schema only scans the content. respBody is only
// read. Safe for concurrent use. A caller that also needs the usage or the
// response ID reads the body once with ReadReply and calls CheckReply.
func (c Contract) CheckMessage(respBody []byte) Verdict {
	if c.Empty() {
		return Verdict{Result: ResultNone}
	}
	r := ReadReply(respBody)
	return c.CheckReply(respBody, &r)
}

func readCall(i int, tc gjson.Result) callView {
	cv := callView{index: i, typ: "function"}
	if t := tc.Get("type"); t.Type == gjson.String && t.Str == "custom" {
		cv.typ = "custom"
		cu := tc.Get("custom")
		cv.name = cu.Get("name").Str
		if in := cu.Get("input"); in.Type == gjson.String {
			cv.args = appendUnquote(nil, in.Raw)
		}
		return cv
	}
	fn := tc.Get("function")
	cv.name = fn.Get("name").Str
	switch a := fn.Get("arguments"); {
	case a.Type == gjson.String:
		cv.args = appendUnquote(make([]byte, 0, len(a.Raw)), a.Raw)
	case a.Exists() && a.Type != gjson.Null:
		cv.args = []byte(a.Raw) // an object where a string belongs: judged as is
	}
	return cv
}

// CheckStream judges a stream from what a has accumulated: the content and
// the tool-call deltas of choice 0 (by index). With an empty contract it
// returns Verdict{Result: "none"}. a is only read.
func (c Contract) CheckStream(a *StreamAccumulator) Verdict {
	if c.Empty() {
		return Verdict{Result: ResultNone}
	}
	m := message{
		content:   a.content,
		refusal:   len(a.refusal) > 0,
		legacy:    a.legacy,
		finish:    a.finish,
		truncated: a.truncated,
		streamErr: len(a.errRaw) > 0,
	}
	if len(a.calls) > 0 {
		m.calls = make([]callView, len(a.calls))
		for i, cl := range a.calls {
			typ := cl.typ
			if typ == "" {
				typ = "function"
			}
			m.calls[i] = callView{index: cl.index, typ: typ, name: string(cl.name), args: cl.args}
		}
		slices.SortFunc(m.calls, func(x, y callView) int { return x.index - y.index })
	}
	return c.check(&m)
}

func (c Contract) check(m *message) Verdict {
	var r reasons
	switch {
	case m.noMessage:
		r.add("response: no choices[0].message")
	case m.truncated:
		r.add("response: too large to check (over " + strconv.Itoa(MaxAccumulatedBytes>>20) + " MiB or " + strconv.Itoa(MaxToolCalls) + " tool calls)")
	default:
		if m.streamErr {
			r.add("stream: the upstream sent an error event")
		}
		called := len(m.calls) > 0 || m.legacy
		// A message that calls a declared tool instead of answering has no
		// content to judge.
		if c.checksContent() && !(c.tools != nil && called && len(trimSpace(m.content)) == 0) {
			c.checkContent(m, &r)
		}
		if c.tools != nil {
			c.checkTools(m, &r)
		}
	}
	if len(r.list) == 0 {
		return Verdict{Result: ResultPass}
	}
	return Verdict{Result: ResultFail, Reasons: r.done()}
}

func (c Contract) checkContent(m *message, r *reasons) {
	if m.refusal && len(trimSpace(m.content)) == 0 {
		r.add("content: refusal instead of JSON")
		return
	}
	if c.route == nil && c.format == nil && validObject(m.content) {
		return // nothing needs the value: a validity scan is the check (issue 15)
	}
	if c.fastPass(m.content) {
		return // the direct validators passed it without decoding (issue 15)
	}
	v, ok := decodeJSON(m.content, "content", m.finish, r)
	if !ok {
		return
	}
	if c.formatMode == formatJSONObject {
		if _, obj := v.(map[string]any); !obj {
			r.add("content: expected a JSON object, got " + kindOf(v))
		}
	}
	if c.route != nil {
		validate(c.route, v, "", r)
	}
	if c.format != nil {
		validate(c.format, v, "", r)
	}
}

func (c Contract) checkTools(m *message, r *reasons) {
	if m.legacy {
		r.add("legacy function_call instead of tool_calls")
	}
	switch {
	case c.choice == choiceNone && len(m.calls) > 0:
		r.add(`tool_calls: present, but tool_choice is "none"`)
	case c.choice == choiceRequired && len(m.calls) == 0 && !m.legacy:
		r.add("tool_calls: missing, but tool_choice requires a tool call")
	case c.choice == choiceNamed && len(m.calls) == 0 && !m.legacy:
		r.add("tool_calls: missing, but tool_choice requires " + strconv.Quote(c.choiceName))
	}
	if c.noParallel && len(m.calls) > 1 {
		r.add("tool_calls: " + strconv.Itoa(len(m.calls)) + " calls, but parallel_tool_calls is false")
	}
	for _, cl := range m.calls {
		p := "tool_calls[" + strconv.Itoa(cl.index) + "]"
		if cl.name == "" {
			r.add(p + ".function.name: missing")
			continue
		}
		d := c.tools.byName[cl.name]
		if d == nil {
			r.add(p + ".function.name: " + strconv.Quote(clip(cl.name)) + " is not a declared tool")
			continue
		}
		if c.choice == choiceNamed && cl.name != c.choiceName {
			r.add(p + ".function.name: " + strconv.Quote(clip(cl.name)) + ", but tool_choice requires " + strconv.Quote(c.choiceName))
		}
		if d.custom || cl.typ == "custom" {
			continue // free-text input
		}
		place := p + ".arguments"
		if d.params == nil && len(trimSpace(cl.args)) == 0 {
			continue // no parameters: "" means {}
		}
		if fastArgs(cl.args, d) {
			continue // passed without decoding (issue 15)
		}
		v, ok := decodeJSON(cl.args, place, m.finish, r)
		if !ok {
			continue
		}
		switch x := v.(type) {
		case string:
			if looksLikeJSON(x) {
				r.add(place + ": JSON encoded twice (a JSON string containing JSON)")
			} else {
				r.add(place + ": expected a JSON object, got string")
			}
			continue
		case map[string]any:
			if w := wrapper(x, d); w != "" {
				r.add(place + ": arguments wrapped in " + w)
				continue
			}
		default:
			r.add(place + ": expected a JSON object, got " + kindOf(v))
			continue
		}
		if d.params != nil {
			validate(d.params, v, place, r)
		}
	}
}

// wrapperKeys are the names models wrap real arguments in.
var wrapperKeys = [...]string{"arguments", "parameters", "args", "params", "input", "function"}

// wrapper recognises arguments that carry the real arguments one level
// down, and says how, unless the function's parameters declare that key.
func wrapper(m map[string]any, d *toolDef) string {
	nested := func(v any) bool {
		switch x := v.(type) {
		case map[string]any:
			return true
		case string:
			return looksLikeJSON(x)
		}
		return false
	}
	switch len(m) {
	case 1:
		for k, v := range m {
			if !nested(v) || declaresProperty(d.params, k) {
				return ""
			}
			if k == d.name || slices.Contains(wrapperKeys[:], k) {
				return `{` + strconv.Quote(clip(k)) + `: …}`
			}
		}
	case 2:
		if _, ok := m["name"].(string); !ok || declaresProperty(d.params, "name") {
			return ""
		}
		for _, k := range [...]string{"arguments", "parameters"} {
			if v, ok := m[k]; ok && nested(v) && !declaresProperty(d.params, k) {
				return `{"name": …, ` + strconv.Quote(k) + `: …} (the whole call)`
			}
		}
	}
	return ""
}

func looksLikeJSON(s string) bool {
	t := trimSpace([]byte(s))
	if len(t) == 0 || (t[0] != '{' && t[0] != '[') {
		return false
	}
	return json.Valid(t)
}

// validObject reports whether b is one JSON object (whitespace around it
// is fine) nested no deeper than MaxValueDepth, scanning it once without
// decoding or allocating. Anything else goes to decodeJSON, which names
// what is wrong.
func validObject(b []byte) bool {
	t := trimSpace(b)
	if len(t) == 0 || t[0] != '{' {
		return false
	}
	res, _ := jsonscan.Check(t, MaxValueDepth)
	return res == jsonscan.OK
}

var fence = []byte("```")

// decodeJSON decodes b as exactly one JSON value (whitespace around it is
// fine), adding a reason named place when it is not: empty, in a markdown
// code fence, text around it, too deep, or invalid at an offset.
func decodeJSON(b []byte, place, finish string, r *reasons) (any, bool) {
	cut := ""
	if finish == "length" {
		cut = ": finish_reason length"
	}
	t := trimSpace(b)
	lead := skipSpace(b, 0)
	if len(t) == 0 {
		if cut != "" {
			r.add(place + ": empty, expected JSON (output cut off" + cut + ")")
		} else {
			r.add(place + ": empty, expected JSON")
		}
		return nil, false
	}
	if bytes.HasPrefix(t, fence) {
		r.add(place + ": JSON wrapped in a markdown code fence")
		return nil, false
	}
	// Content and arguments come from the upstream: checked without
	// recursion before the decoder and the validator recurse into them.
	switch res, _ := jsonscan.Check(t, MaxValueDepth); res {
	case jsonscan.TooDeep:
		r.add(place + ": JSON nests deeper than " + strconv.Itoa(MaxValueDepth) + " levels")
		return nil, false
	case jsonscan.OK:
		return decodeValid(t), true // the common case: one pass
	}
	d := json.NewDecoder(bytes.NewReader(t))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	if err == nil {
		rest := trimSpace(t[d.InputOffset():])
		switch {
		case len(rest) == 0:
			return v, true
		case bytes.Contains(rest, fence):
			r.add(place + ": JSON wrapped in a markdown code fence")
		case rest[0] == '{' || rest[0] == '[':
			r.add(place + ": more than one JSON value")
		default:
			r.add(place + ": text around JSON")
		}
		return nil, false
	}
	if embeddedJSON(t) {
		if bytes.Contains(t, fence) {
			r.add(place + ": JSON wrapped in a markdown code fence")
		} else {
			r.add(place + ": text around JSON")
		}
		return nil, false
	}
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		r.add(place + ": invalid JSON at offset " + strconv.FormatInt(int64(lead)+max(se.Offset-1, 0), 10) + cutNote(cut, false))
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		r.add(place + ": invalid JSON at offset " + strconv.Itoa(lead+len(t)) + cutNote(cut, true))
	default:
		r.add(place + ": invalid JSON")
	}
	return nil, false
}

func cutNote(cut string, eof bool) string {
	switch {
	case cut != "":
		return " (output cut off" + cut + ")"
	case eof:
		return " (unexpected end)"
	}
	return ""
}

// embeddedJSON reports whether t, which is not JSON itself, contains an
// object or array after some other text, as in "Sure! {…}".
func embeddedJSON(t []byte) bool {
	for _, open := range [...]byte{'{', '['} {
		i := bytes.IndexByte(t, open)
		if i <= 0 {
			continue
		}
		d := json.NewDecoder(bytes.NewReader(t[i:]))
		var v json.RawMessage
		if d.Decode(&v) == nil {
			return true
		}
	}
	return false
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number, float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}
