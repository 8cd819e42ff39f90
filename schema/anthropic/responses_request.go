package anthropic

import (
	"fmt"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/internal/jsonscan"
	"github.com/cairnhq/cairn/internal/jsonstr"
)

// The Responses API (/v1/responses) to an Anthropic provider: what the
// Messages API can express translates, the rest is a ParamError naming it.
//
//	instructions, system/developer input messages → system
//	input: a string, or message items (user, assistant; content a string
//	  or input_text / output_text / input_image parts)
//	function_call items          → assistant tool_use blocks (id = call_id)
//	function_call_output items   → user tool_result blocks
//	tools (type function, flat)  → tools; tool_choice as for chat
//	max_output_tokens            → max_tokens (default: RequestOptions.MaxTokens)
//	temperature, top_p, user / safety_identifier, stream
//
// Refused: previous_response_id and conversation (the state lives at
// OpenAI), store: true (Anthropic keeps nothing to continue or fetch; the
// SDK omits store, which is accepted and stores nothing), background,
// reasoning, include, text.format other than text, built-in tools,
// and any parameter not listed here.

// responsesBenign are Responses parameters accepted when they hold their
// default (compared to the raw JSON; nil accepts any value).
var responsesBenign = map[string][]string{
	"store":          {"false"},
	"background":     {"false"},
	"include":        {"[]"},
	"truncation":     {`"disabled"`},
	"service_tier":   {`"auto"`, `"default"`},
	"metadata":       nil, // OpenAI's response tags: nothing is stored
	"stream_options": nil, // usage is always in response.completed
}

// AppendResponsesRequest appends the Messages API request for the
// Responses API request body to dst. body is only read. A ParamError
// names what cannot be translated; dst is then returned as it was.
func AppendResponsesRequest(dst, body []byte, o RequestOptions) ([]byte, *ParamError) {
	if !jsonscan.Valid(body) {
		return dst, paramErr("", "the request body is not valid JSON")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return dst, paramErr("", "the request body must be a JSON object")
	}
	start := len(dst)
	var perr *ParamError
	var model, maxTokens, temperature, topP, user, tools, toolChoice, stream, input, instructions gjson.Result
	parallel := true
	root.ForEach(func(k, v gjson.Result) bool {
		key := k.Str
		switch key {
		case "model":
			model = v
		case "input":
			input = v
		case "instructions":
			instructions = v
		case "max_output_tokens":
			if v.Type != gjson.Null {
				maxTokens = v
			}
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
		case "previous_response_id", "conversation":
			if v.Type != gjson.Null {
				perr = paramErr(key, "%s cannot be sent to an Anthropic provider: it keeps no conversation state; send the whole conversation as input", key)
			}
		case "text":
			if f := v.Get("format.type"); f.Exists() && f.Str != "text" {
				perr = paramErr("text.format", "text.format %s cannot be sent to an Anthropic provider; the route's contract still checks the answer", f.Raw)
			} else if vb := v.Get("verbosity"); vb.Exists() && vb.Type != gjson.Null && vb.Str != "medium" {
				perr = paramErr("text.verbosity", "text.verbosity cannot be translated for an Anthropic provider")
			}
		default:
			if v.Type == gjson.Null {
				return true
			}
			perr = benignParam(responsesBenign, key, v)
		}
		return perr == nil
	})
	if perr != nil {
		return dst[:start], perr
	}

	dst, perr = appendHead(dst, o, model, maxTokens, "max_output_tokens")
	if perr != nil {
		return dst[:start], perr
	}

	var system []byte
	switch {
	case instructions.Type == gjson.String:
		system = append(system, instructions.Str...)
	case instructions.Exists() && instructions.Type != gjson.Null:
		return dst[:start], paramErr("instructions", "instructions must be a string")
	}
	mark := len(dst)
	dst = append(dst, `,"messages":[`...)
	var err *ParamError
	if dst, system, err = appendResponsesInput(dst, input, system); err != nil {
		return dst[:start], err
	}
	dst = append(dst, ']')
	if len(system) > 0 {
		msgs := append([]byte(nil), dst[mark:]...)
		dst = append(dst[:mark], `,"system":`...)
		dst = jsonstr.Append(dst, string(system))
		dst = append(dst, msgs...)
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
		if dst, err = appendResponsesTools(dst, tools); err != nil {
			return dst[:start], err
		}
	} else if tools.Exists() && tools.Type != gjson.Null && !tools.IsArray() {
		return dst[:start], paramErr("tools", "tools must be an array")
	}
	// tool_choice in the Responses shape: a named function is flat
	// ({"type":"function","name":…}); the chat mapping does the rest.
	tc := toolChoice
	if tc.IsObject() {
		if tc.Get("type").Str != "function" || tc.Get("name").Type != gjson.String {
			return dst[:start], paramErr("tool_choice", "tool_choice %s cannot be translated for an Anthropic provider", tc.Raw)
		}
		tc = gjson.Parse(`{"type":"function","function":{"name":` + tc.Get("name").Raw + `}}`)
	}
	if dst, err = appendToolChoice(dst, tc, parallel, hasTools); err != nil {
		return dst[:start], err
	}
	if stream.Type == gjson.True {
		dst = append(dst, `,"stream":true`...)
	}
	return append(dst, '}'), nil
}

// appendResponsesInput appends the messages of input (without the
// brackets) and returns system with the system and developer messages'
// text added. Consecutive items of one role merge into one turn, as for
// chat.
func appendResponsesInput(dst []byte, input gjson.Result, system []byte) ([]byte, []byte, *ParamError) {
	switch {
	case input.Type == gjson.String:
		if input.Str == "" {
			return dst, system, paramErr("input", "input is empty")
		}
		dst = append(dst, `{"role":"user","content":[`...)
		dst = appendText(dst, input.Raw)
		return append(dst, "]}"...), system, nil
	case !input.IsArray():
		return dst, system, paramErr("input", "input must be a string or an array of items")
	}
	lastRole := ""
	n := 0
	for i, it := range input.Array() {
		f := "input[" + strconv.Itoa(i) + "]"
		if !it.IsObject() {
			return dst, system, paramErr(f, "%s must be an object", f)
		}
		typ := it.Get("type").Str
		role := it.Get("role").Str
		want := ""
		switch typ {
		case "message", "":
			switch role {
			case "system", "developer":
				txt, err := responsesText(it.Get("content"), f+".content")
				if err != nil {
					return dst, system, err
				}
				if len(system) > 0 {
					system = append(system, "\n\n"...)
				}
				system = append(system, txt...)
				continue
			case "user", "assistant":
				want = role
			default:
				return dst, system, paramErr(f+".role", "%s.role %q cannot be translated for an Anthropic provider", f, role)
			}
		case "function_call":
			want = "assistant"
		case "function_call_output":
			want = "user"
		default:
			return dst, system, paramErr(f+".type", "%s: input item type %q cannot be translated for an Anthropic provider", f, typ)
		}
		mark := len(dst)
		if want == lastRole {
			dst = append(dst, ',')
		} else {
			if n > 0 {
				dst = append(dst, "]},"...)
			}
			dst = append(dst, `{"role":"`...)
			dst = append(dst, want...)
			dst = append(dst, `","content":[`...)
		}
		before := len(dst)
		var err *ParamError
		switch typ {
		case "function_call":
			dst, err = appendCallItem(dst, it, f)
		case "function_call_output":
			dst, err = appendCallOutput(dst, it, f)
		default:
			dst, err = appendResponsesContent(dst, it.Get("content"), role, f+".content")
		}
		if err != nil {
			return dst, system, err
		}
		if len(dst) == before {
			if role == "assistant" {
				dst = dst[:mark] // an empty assistant turn says nothing
				continue
			}
			return dst, system, paramErr(f+".content", "%s.content is empty", f)
		}
		if want != lastRole {
			n++
		}
		lastRole = want
	}
	if n == 0 {
		return dst, system, paramErr("input", "input holds no user or assistant message")
	}
	return append(dst, "]}"...), system, nil
}

// responsesText returns the text of a system or developer message: a
// string or an array of input_text parts.
func responsesText(c gjson.Result, f string) ([]byte, *ParamError) {
	if c.Type == gjson.String {
		return []byte(c.Str), nil
	}
	if !c.IsArray() {
		return nil, paramErr(f, "%s must be a string or an array of text parts", f)
	}
	var out []byte
	for j, p := range c.Array() {
		if t := p.Get("type").Str; t != "input_text" && t != "text" {
			return nil, paramErr(fmt.Sprintf("%s[%d].type", f, j), "%s[%d]: only text parts can be translated here", f, j)
		}
		if len(out) > 0 {
			out = append(out, '\n')
		}
		out = append(out, p.Get("text").Str...)
	}
	return out, nil
}

// appendResponsesContent appends a user or assistant message's blocks.
func appendResponsesContent(dst []byte, c gjson.Result, role, f string) ([]byte, *ParamError) {
	if c.Type == gjson.String {
		if c.Str == "" {
			return dst, nil
		}
		return appendText(dst, c.Raw), nil
	}
	if !c.IsArray() {
		return dst, paramErr(f, "%s must be a string or an array of content parts", f)
	}
	start := len(dst)
	for j, p := range c.Array() {
		pf := fmt.Sprintf("%s[%d]", f, j)
		if len(dst) > start {
			dst = append(dst, ',')
		}
		switch t := p.Get("type").Str; {
		case t == "input_text" || t == "output_text" || t == "text":
			tx := p.Get("text")
			if tx.Type != gjson.String {
				return dst, paramErr(pf+".text", "%s.text must be a string", pf)
			}
			dst = appendText(dst, tx.Raw)
		case t == "input_image" && role == "user":
			if d := p.Get("detail"); d.Exists() && d.Type != gjson.Null && d.Str != "auto" {
				return dst, paramErr(pf+".detail", "%s.detail %s cannot be translated for an Anthropic provider", pf, d.Raw)
			}
			u := p.Get("image_url")
			if u.Type != gjson.String {
				return dst, paramErr(pf+".image_url", "%s.image_url must be a URL (file_id cannot be translated)", pf)
			}
			var err *ParamError
			if dst, err = appendImage(dst, gjson.Parse(`{"url":`+u.Raw+`}`), pf); err != nil {
				return dst, err
			}
		default:
			return dst, paramErr(pf+".type", "%s: content part type %q cannot be translated for an Anthropic provider", pf, t)
		}
	}
	return dst, nil
}

// appendCallItem turns a function_call item into a tool_use block.
func appendCallItem(dst []byte, it gjson.Result, f string) ([]byte, *ParamError) {
	id, name := it.Get("call_id"), it.Get("name")
	if id.Type != gjson.String || id.Str == "" {
		return dst, paramErr(f+".call_id", "%s.call_id is required", f)
	}
	if name.Type != gjson.String || name.Str == "" {
		return dst, paramErr(f+".name", "%s.name is required", f)
	}
	args := it.Get("arguments").Str
	if args == "" {
		args = "{}"
	}
	if !jsonscan.Valid(args) || !gjson.Parse(args).IsObject() {
		return dst, paramErr(f+".arguments", "%s.arguments must be a JSON object", f)
	}
	dst = append(dst, `{"type":"tool_use","id":`...)
	dst = append(dst, id.Raw...)
	dst = append(dst, `,"name":`...)
	dst = append(dst, name.Raw...)
	dst = append(dst, `,"input":`...)
	dst = append(dst, gjson.Parse(args).Raw...)
	return append(dst, '}'), nil
}

// appendCallOutput turns a function_call_output item into a tool_result.
func appendCallOutput(dst []byte, it gjson.Result, f string) ([]byte, *ParamError) {
	return appendResult(dst, it, f, resultFields{id: "call_id", content: "output", part: "input_text", what: "a function_call_output"})
}

// appendResponsesTools maps flat function tools; built-in tools
// (web_search, file_search, computer_use, mcp …) are refused.
func appendResponsesTools(dst []byte, tools gjson.Result) ([]byte, *ParamError) {
	dst = append(dst, `,"tools":[`...)
	for j, t := range tools.Array() {
		f := fmt.Sprintf("tools[%d]", j)
		if typ := t.Get("type").Str; typ != "function" {
			return dst, paramErr(f+".type", "%s: tool type %q cannot be translated for an Anthropic provider; only function tools can", f, typ)
		}
		name := t.Get("name")
		if name.Type != gjson.String || name.Str == "" {
			return dst, paramErr(f+".name", "%s.name is required", f)
		}
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"name":`...)
		dst = append(dst, name.Raw...)
		if d := t.Get("description"); d.Type == gjson.String {
			dst = append(dst, `,"description":`...)
			dst = append(dst, d.Raw...)
		}
		dst = append(dst, `,"input_schema":`...)
		if p := t.Get("parameters"); p.IsObject() {
			dst = append(dst, p.Raw...)
		} else {
			dst = append(dst, `{"type":"object","properties":{}}`...)
		}
		dst = append(dst, '}')
	}
	return append(dst, ']'), nil
}
