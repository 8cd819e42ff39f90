// Package anthropic translates between OpenAI's chat completions wire and
// Anthropic's Messages API (issue 19): a chat completions request becomes a
// Messages request, and a Messages response, stream or error becomes what
// an OpenAI client expects. The functions are pure: they work on bytes,
// keep nothing, and are safe for concurrent use; Stream is per stream.
//
// What the Messages API cannot express is refused with a ParamError that
// names the parameter (n > 1, logprobs, response_format, audio …), never
// dropped silently.
package anthropic

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/internal/jsonscan"
	"github.com/cairnhq/cairn/internal/jsonstr"
)

// ParamError is a chat completions parameter that cannot be translated.
// The gateway answers it with a 400 invalid_request_error naming Param.
type ParamError struct {
	Param   string
	Message string
}

func (e *ParamError) Error() string { return e.Message }

func paramErr(param, format string, a ...any) *ParamError {
	return &ParamError{Param: param, Message: fmt.Sprintf(format, a...)}
}

// RequestOptions are what a translated request needs besides the body.
type RequestOptions struct {
	// Model is the upstream model; empty keeps the body's.
	Model string
	// MaxTokens is sent when the body sets neither max_tokens nor
	// max_completion_tokens (the Messages API requires it).
	MaxTokens int
}

// benign lists parameters that are accepted when they hold their default
// value (the Messages API has no equivalent, and the default asks for
// nothing): the value is compared to the raw JSON.
// benignParam returns nil when table lets key through with value v (any
// value when its list is nil, else one of the listed raw values), else the
// error naming it. A key missing from table cannot be translated.
func benignParam(table map[string][]string, key string, v gjson.Result) *ParamError {
	allowed, known := table[key]
	switch {
	case !known:
		return paramErr(key, "%s cannot be translated for an Anthropic provider", key)
	case allowed == nil || slices.Contains(allowed, v.Raw):
		return nil
	}
	return paramErr(key, "%s=%s cannot be translated for an Anthropic provider", key, v.Raw)
}

var benign = map[string][]string{
	"n":                 {"1"},
	"logprobs":          {"false"},
	"presence_penalty":  {"0", "0.0"},
	"frequency_penalty": {"0", "0.0"},
	"store":             {"false"},
	"service_tier":      {`"auto"`, `"default"`},
	"stream_options":    nil, // any: usage is always known
	"modalities":        {`["text"]`},
	"metadata":          nil, // OpenAI's stored-completion tags: nothing is stored
}

// AppendRequest appends the Messages API request for the chat completions
// request body to dst. body is only read. A ParamError names what cannot
// be translated; dst is then returned as it was.
func AppendRequest(dst, body []byte, o RequestOptions) ([]byte, *ParamError) {
	if !jsonscan.Valid(body) {
		return dst, paramErr("", "the request body is not valid JSON")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return dst, paramErr("", "the request body must be a JSON object")
	}
	start := len(dst)
	var perr *ParamError
	var (
		model, maxTokens, stop, temperature, topP, user, tools, toolChoice, stream gjson.Result
		parallel                                                                   = true
		messages                                                                   gjson.Result
	)
	root.ForEach(func(k, v gjson.Result) bool {
		switch key := k.Str; key {
		case "model":
			model = v
		case "messages":
			messages = v
		case "max_tokens", "max_completion_tokens":
			if v.Type != gjson.Null {
				maxTokens = v
			}
		case "stop":
			stop = v
		case "temperature":
			temperature = v
		case "top_p":
			topP = v
		case "user", "safety_identifier":
			if v.Type == gjson.String && v.Str != "" {
				user = v
			}
		case "tools":
			tools = v
		case "tool_choice":
			toolChoice = v
		case "stream":
			stream = v
		case "parallel_tool_calls":
			parallel = v.Type != gjson.False
		case "response_format":
			if v.Get("type").Str != "text" && v.Type != gjson.Null {
				perr = paramErr(key, "response_format %s cannot be sent to an Anthropic provider; the route's contract still checks the answer", v.Get("type").Raw)
			}
		default:
			if v.Type == gjson.Null {
				return true
			}
			perr = benignParam(benign, key, v)
		}
		return perr == nil
	})
	if perr != nil {
		return dst[:start], perr
	}
	if !messages.IsArray() {
		return dst[:start], paramErr("messages", "messages must be an array")
	}

	dst, perr = appendHead(dst, o, model, maxTokens, "max_tokens")
	if perr != nil {
		return dst[:start], perr
	}

	// System messages (system, developer) become the top-level system
	// prompt, in order, joined by a blank line.
	var system []byte
	mark := len(dst)
	dst = append(dst, `,"messages":[`...)
	lastRole := ""
	n := 0
	for i, m := range messages.Array() {
		f := "messages[" + strconv.Itoa(i) + "]"
		if !m.IsObject() {
			return dst[:start], paramErr(f, "%s must be an object", f)
		}
		role := m.Get("role").Str
		if nm := m.Get("name"); nm.Exists() && nm.Type != gjson.Null {
			return dst[:start], paramErr(f+".name", "%s.name cannot be translated for an Anthropic provider", f)
		}
		switch role {
		case "system", "developer":
			txt, err := textOf(m.Get("content"), f+".content")
			if err != nil {
				return dst[:start], err
			}
			if len(system) > 0 {
				system = append(system, "\n\n"...)
			}
			system = append(system, txt...)
			continue
		case "user", "assistant", "tool":
		default:
			return dst[:start], paramErr(f+".role", "%s.role %q cannot be translated for an Anthropic provider", f, role)
		}
		want := role
		if role == "tool" {
			want = "user" // tool results travel in a user turn
		}
		// Consecutive turns of one role merge into one message: the
		// Messages API alternates roles, and all results of one round of
		// tool calls must sit in the user turn after it.
		if want == lastRole {
			dst = append(dst, ',')
		} else {
			if n > 0 {
				dst = append(dst, "]},"...)
			}
			dst = append(dst, `{"role":"`...)
			dst = append(dst, want...)
			dst = append(dst, `","content":[`...)
			n++
		}
		before := len(dst)
		var err *ParamError
		switch role {
		case "user":
			dst, err = appendUserContent(dst, m.Get("content"), f+".content")
		case "assistant":
			dst, err = appendAssistant(dst, m, f)
		case "tool":
			dst, err = appendToolResult(dst, m, f)
		}
		if err != nil {
			return dst[:start], err
		}
		if len(dst) == before {
			// An empty turn: drop the separator or open the turn empty;
			// the Messages API refuses empty content, so say so.
			return dst[:start], paramErr(f+".content", "%s.content is empty", f)
		}
		lastRole = want
	}
	if n > 0 {
		dst = append(dst, "]}"...)
	}
	dst = append(dst, ']')
	if len(system) > 0 {
		// The system prompt goes before the messages for readability.
		msgs := append([]byte(nil), dst[mark:]...)
		dst = append(dst[:mark], `,"system":`...)
		dst = jsonstr.Append(dst, string(system))
		dst = append(dst, msgs...)
	}
	if stop.Exists() && stop.Type != gjson.Null {
		dst = append(dst, `,"stop_sequences":`...)
		switch {
		case stop.Type == gjson.String:
			dst = append(dst, '[')
			dst = append(dst, stop.Raw...)
			dst = append(dst, ']')
		case stop.IsArray():
			for _, s := range stop.Array() {
				if s.Type != gjson.String {
					return dst[:start], paramErr("stop", "stop must be a string or an array of strings")
				}
			}
			dst = append(dst, stop.Raw...)
		default:
			return dst[:start], paramErr("stop", "stop must be a string or an array of strings")
		}
	}
	for _, p := range []struct {
		name string
		v    gjson.Result
	}{{"temperature", temperature}, {"top_p", topP}} {
		if p.v.Exists() && p.v.Type != gjson.Null {
			if p.v.Type != gjson.Number {
				return dst[:start], paramErr(p.name, "%s must be a number", p.name)
			}
			dst = append(dst, ',', '"')
			dst = append(dst, p.name...)
			dst = append(dst, `":`...)
			dst = append(dst, p.v.Raw...)
		}
	}
	if user.Exists() {
		dst = append(dst, `,"metadata":{"user_id":`...)
		dst = append(dst, user.Raw...)
		dst = append(dst, '}')
	}
	hasTools := tools.IsArray() && len(tools.Array()) > 0
	if hasTools {
		var err *ParamError
		if dst, err = appendTools(dst, tools); err != nil {
			return dst[:start], err
		}
	}
	var err *ParamError
	if dst, err = appendToolChoice(dst, toolChoice, parallel, hasTools); err != nil {
		return dst[:start], err
	}
	if stream.Type == gjson.True {
		dst = append(dst, `,"stream":true`...)
	}
	return append(dst, '}'), nil
}

// textOf returns the text of a system or developer message: a string or
// an array of text parts.
func textOf(c gjson.Result, f string) ([]byte, *ParamError) {
	switch {
	case c.Type == gjson.String:
		return []byte(c.Str), nil
	case c.IsArray():
		var out []byte
		for j, p := range c.Array() {
			if p.Get("type").Str != "text" {
				return nil, paramErr(fmt.Sprintf("%s[%d].type", f, j), "%s[%d]: only text parts can be translated here", f, j)
			}
			if len(out) > 0 {
				out = append(out, '\n')
			}
			out = append(out, p.Get("text").Str...)
		}
		return out, nil
	}
	return nil, paramErr(f, "%s must be a string or an array of text parts", f)
}

// appendText appends one text block; raw is a JSON string literal.
func appendText(dst []byte, raw string) []byte {
	dst = append(dst, `{"type":"text","text":`...)
	dst = append(dst, raw...)
	return append(dst, '}')
}

func appendUserContent(dst []byte, c gjson.Result, f string) ([]byte, *ParamError) {
	switch {
	case c.Type == gjson.String:
		if c.Str == "" {
			return dst, nil
		}
		return appendText(dst, c.Raw), nil
	case c.IsArray():
		for j, p := range c.Array() {
			pf := fmt.Sprintf("%s[%d]", f, j)
			if j > 0 {
				dst = append(dst, ',')
			}
			switch t := p.Get("type").Str; t {
			case "text":
				tx := p.Get("text")
				if tx.Type != gjson.String {
					return dst, paramErr(pf+".text", "%s.text must be a string", pf)
				}
				dst = appendText(dst, tx.Raw)
			case "image_url":
				var err *ParamError
				if dst, err = appendImage(dst, p.Get("image_url"), pf); err != nil {
					return dst, err
				}
			default:
				return dst, paramErr(pf+".type", "%s: content part type %q cannot be translated for an Anthropic provider", pf, t)
			}
		}
		return dst, nil
	}
	return dst, paramErr(f, "%s must be a string or an array of content parts", f)
}

// appendImage turns an image_url part into an image block: a data: URL
// becomes a base64 source, an http(s) URL a url source.
func appendImage(dst []byte, img gjson.Result, f string) ([]byte, *ParamError) {
	u := img.Get("url")
	if u.Type != gjson.String {
		return dst, paramErr(f+".image_url.url", "%s.image_url.url must be a string", f)
	}
	if d := img.Get("detail"); d.Exists() && d.Str != "auto" {
		return dst, paramErr(f+".image_url.detail", "%s.image_url.detail %s cannot be translated for an Anthropic provider", f, d.Raw)
	}
	s := u.Str
	switch {
	case strings.HasPrefix(s, "data:"):
		meta, data, ok := strings.Cut(s[len("data:"):], ",")
		mt, enc, _ := strings.Cut(meta, ";")
		if !ok || enc != "base64" || mt == "" {
			return dst, paramErr(f+".image_url.url", "%s.image_url.url: a data URL must be data:<media type>;base64,<data>", f)
		}
		dst = append(dst, `{"type":"image","source":{"type":"base64","media_type":`...)
		dst = jsonstr.Append(dst, mt)
		dst = append(dst, `,"data":`...)
		dst = jsonstr.Append(dst, data)
		return append(dst, "}}"...), nil
	case strings.HasPrefix(s, "https://"), strings.HasPrefix(s, "http://"):
		dst = append(dst, `{"type":"image","source":{"type":"url","url":`...)
		dst = append(dst, u.Raw...)
		return append(dst, "}}"...), nil
	}
	return dst, paramErr(f+".image_url.url", "%s.image_url.url must be an http(s) or base64 data URL", f)
}

func appendAssistant(dst []byte, m gjson.Result, f string) ([]byte, *ParamError) {
	start := len(dst)
	c := m.Get("content")
	switch {
	case c.Type == gjson.String:
		if c.Str != "" {
			dst = appendText(dst, c.Raw)
		}
	case c.IsArray():
		for j, p := range c.Array() {
			if p.Get("type").Str != "text" {
				pf := fmt.Sprintf("%s.content[%d]", f, j)
				return dst, paramErr(pf+".type", "%s: only text parts of an assistant message can be translated", pf)
			}
			tx := p.Get("text")
			if tx.Type != gjson.String {
				pf := fmt.Sprintf("%s.content[%d]", f, j)
				return dst, paramErr(pf+".text", "%s.text must be a string", pf)
			}
			if len(dst) > start {
				dst = append(dst, ',')
			}
			dst = appendText(dst, tx.Raw)
		}
	case c.Exists() && c.Type != gjson.Null:
		return dst, paramErr(f+".content", "%s.content must be a string, an array of text parts or null", f)
	}
	if fc := m.Get("function_call"); fc.Exists() && fc.Type != gjson.Null {
		return dst, paramErr(f+".function_call", "%s.function_call (legacy) cannot be translated; use tool_calls", f)
	}
	for j, tc := range m.Get("tool_calls").Array() {
		pf := fmt.Sprintf("%s.tool_calls[%d]", f, j)
		if tc.Get("type").Str != "function" {
			return dst, paramErr(pf+".type", "%s: only function tool calls can be translated", pf)
		}
		args := tc.Get("function.arguments").Str
		if strings.TrimSpace(args) == "" {
			args = "{}"
		}
		a := gjson.Parse(args)
		if !jsonscan.Valid(args) || !a.IsObject() {
			return dst, paramErr(pf+".function.arguments", "%s.function.arguments must be a JSON object", pf)
		}
		if len(dst) > start {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"type":"tool_use","id":`...)
		dst = jsonstr.Append(dst, tc.Get("id").Str)
		dst = append(dst, `,"name":`...)
		dst = jsonstr.Append(dst, tc.Get("function.name").Str)
		dst = append(dst, `,"input":`...)
		dst = append(dst, a.Raw...)
		dst = append(dst, '}')
	}
	return dst, nil
}

func appendToolResult(dst []byte, m gjson.Result, f string) ([]byte, *ParamError) {
	return appendResult(dst, m, f, resultFields{id: "tool_call_id", content: "content", part: "text", what: "a tool message"})
}

// resultFields names where a tool's answer sits in the OpenAI shape being
// translated: chat's tool message or a Responses function_call_output.
type resultFields struct {
	id, content, part, what string
}

// appendResult writes a tool_result block from the answer m to a tool
// call: its ID and its content, a string or an array of text parts.
func appendResult(dst []byte, m gjson.Result, f string, n resultFields) ([]byte, *ParamError) {
	id := m.Get(n.id)
	if id.Type != gjson.String || id.Str == "" {
		return dst, paramErr(f+"."+n.id, "%s.%s is required", f, n.id)
	}
	dst = append(dst, `{"type":"tool_result","tool_use_id":`...)
	dst = append(dst, id.Raw...)
	c := m.Get(n.content)
	switch {
	case c.Type == gjson.String:
		dst = append(dst, `,"content":`...)
		dst = append(dst, c.Raw...)
	case c.IsArray():
		dst = append(dst, `,"content":[`...)
		for j, p := range c.Array() {
			pf := fmt.Sprintf("%s.%s[%d]", f, n.content, j)
			if p.Get("type").Str != n.part {
				return dst, paramErr(pf+".type", "%s: only %s parts of %s can be translated", pf, n.part, n.what)
			}
			tx := p.Get("text")
			if tx.Type != gjson.String {
				return dst, paramErr(pf+".text", "%s.text must be a string", pf)
			}
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = appendText(dst, tx.Raw)
		}
		dst = append(dst, ']')
	default:
		return dst, paramErr(f+"."+n.content, "%s.%s must be a string or an array of %s parts", f, n.content, n.part)
	}
	return append(dst, '}'), nil
}

func appendTools(dst []byte, tools gjson.Result) ([]byte, *ParamError) {
	dst = append(dst, `,"tools":[`...)
	for j, t := range tools.Array() {
		f := fmt.Sprintf("tools[%d]", j)
		if t.Get("type").Str != "function" {
			return dst, paramErr(f+".type", "%s: only function tools can be translated for an Anthropic provider", f)
		}
		fn := t.Get("function")
		name := fn.Get("name")
		if name.Type != gjson.String || name.Str == "" {
			return dst, paramErr(f+".function.name", "%s.function.name is required", f)
		}
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"name":`...)
		dst = append(dst, name.Raw...)
		if d := fn.Get("description"); d.Type == gjson.String {
			dst = append(dst, `,"description":`...)
			dst = append(dst, d.Raw...)
		}
		dst = append(dst, `,"input_schema":`...)
		if p := fn.Get("parameters"); p.IsObject() {
			dst = append(dst, p.Raw...)
		} else {
			dst = append(dst, `{"type":"object","properties":{}}`...)
		}
		dst = append(dst, '}')
	}
	return append(dst, ']'), nil
}

// appendToolChoice maps tool_choice: auto → auto, required → any, none →
// none, a named function → tool; parallel_tool_calls: false becomes
// disable_parallel_tool_use.
func appendToolChoice(dst []byte, c gjson.Result, parallel, hasTools bool) ([]byte, *ParamError) {
	var typ, name string
	switch {
	case !c.Exists() || c.Type == gjson.Null:
		if parallel || !hasTools {
			return dst, nil
		}
		typ = "auto"
	case c.Type == gjson.String:
		switch c.Str {
		case "auto":
			typ = "auto"
		case "required":
			typ = "any"
		case "none":
			typ = "none"
		default:
			return dst, paramErr("tool_choice", "tool_choice %s is not auto, required, none or a function", c.Raw)
		}
	case c.Get("type").Str == "function" && c.Get("function.name").Type == gjson.String:
		typ, name = "tool", c.Get("function.name").Str
	default:
		return dst, paramErr("tool_choice", "tool_choice %s cannot be translated for an Anthropic provider", c.Raw)
	}
	if !hasTools && typ == "none" {
		return dst, nil // nothing to call, nothing to say
	}
	if !hasTools {
		return dst, paramErr("tool_choice", "tool_choice is set but no tools are given")
	}
	dst = append(dst, `,"tool_choice":{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, '"')
	if name != "" {
		dst = append(dst, `,"name":`...)
		dst = jsonstr.Append(dst, name)
	}
	if !parallel && typ != "none" {
		dst = append(dst, `,"disable_parallel_tool_use":true`...)
	}
	return append(dst, '}'), nil
}

// appendHead opens the Messages request with its model (the target's, or
// the client's) and max_tokens (the client's, under maxParam, or the
// provider's default), for chat and Responses alike.
func appendHead(dst []byte, o RequestOptions, model, maxTokens gjson.Result, maxParam string) ([]byte, *ParamError) {
	dst = append(dst, `{"model":`...)
	switch {
	case o.Model != "":
		dst = jsonstr.Append(dst, o.Model)
	case model.Type == gjson.String:
		dst = append(dst, model.Raw...)
	default:
		return dst, paramErr("model", "model must be a string")
	}
	dst = append(dst, `,"max_tokens":`...)
	switch {
	case maxTokens.Exists():
		if maxTokens.Type != gjson.Number || maxTokens.Int() < 1 || maxTokens.Raw != strconv.FormatInt(maxTokens.Int(), 10) {
			return dst, paramErr(maxParam, "%s must be a positive integer", maxParam)
		}
		dst = append(dst, maxTokens.Raw...)
	case o.MaxTokens > 0:
		dst = strconv.AppendInt(dst, int64(o.MaxTokens), 10)
	default:
		return dst, paramErr(maxParam, "%s is required by the Anthropic provider", maxParam)
	}
	return dst, nil
}
