package schema

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// responsesFields are the parts of a /v1/responses request that chat has
// no counterpart for. Offsets are into the body the request was parsed
// from (or a byte-identical copy): Rewrite needs them, nothing else does.
type responsesFields struct {
	previousID   string
	noStore      bool   // "store": false: the provider keeps nothing to continue
	instructions [2]int // the "instructions" value, or 0, 0
	instrString  bool   // instructions is a string (not null)
	model        [2]int
	base         int
	topEmpty     bool
	parsed       bool
}

// Bits of the top-level keys of a Responses request Cairn interprets; a
// repeated one is refused (gjson takes the first value, most servers the
// last, so the gateway and the upstream could read different requests).
const (
	rkModel uint32 = 1 << iota
	rkInput
	rkInstructions
	rkStream
	rkText
	rkTools
	rkToolChoice
	rkParallelToolCalls
	rkTemperature
	rkTopP
	rkMaxOutputTokens
	rkUser
	rkSafetyIdentifier
	rkPreviousResponseID
	rkStore
	rkConversation
)

func responsesKeyBit(k string) uint32 {
	switch k {
	case "model":
		return rkModel
	case "input":
		return rkInput
	case "instructions":
		return rkInstructions
	case "stream":
		return rkStream
	case "text":
		return rkText
	case "tools":
		return rkTools
	case "tool_choice":
		return rkToolChoice
	case "parallel_tool_calls":
		return rkParallelToolCalls
	case "temperature":
		return rkTemperature
	case "top_p":
		return rkTopP
	case "max_output_tokens":
		return rkMaxOutputTokens
	case "user":
		return rkUser
	case "safety_identifier":
		return rkSafetyIdentifier
	case "previous_response_id":
		return rkPreviousResponseID
	case "store":
		return rkStore
	case "conversation":
		return rkConversation
	}
	return 0
}

// MaxResponseIDBytes bounds a previous_response_id (and a response ID in a
// path): OpenAI's are about 50 bytes; longer ones are refused before they
// reach a map, a record or Redis.
const MaxResponseIDBytes = 128

// ParseResponsesRequest reads a POST /v1/responses request body: model
// (required), input (a string or an array of items), instructions (a
// string), stream, text.format (json_object or json_schema with its
// schema), tools (function tools name their function at the top level:
// {"type":"function","name":…,"parameters":{…}}), tool_choice,
// parallel_tool_calls, temperature, top_p, max_output_tokens, user,
// safety_identifier, previous_response_id and store. Errors are
// *RequestError as for ParseChatRequest: the body's depth and grammar are
// checked without recursion first, a repeated interpreted key (at the top
// level, in text.format, in tools and in input) is refused, and numbers
// must be finite and in range. The Request's byte-slice fields alias body.
// Safe for concurrent use; body is only read.
func ParseResponsesRequest(body []byte) (Request, error) {
	top, base, err := parseBody(body)
	if err != nil {
		return Request{}, err
	}
	r := Request{}
	r.resp = responsesFields{parsed: true, base: base, topEmpty: isEmptyObject(top.Raw)}
	var (
		seen          uint32
		perr          *RequestError
		user, safety  string
		input, maxOut gjson.Result
	)
	topRaw := top.Raw
	eachMember(topRaw, func(key, raw string) bool {
		v := gjson.Parse(raw)
		bit := responsesKeyBit(key)
		if bit == 0 {
			return true
		}
		if seen&bit != 0 {
			perr = reqErr(key, "duplicate key '"+key+"' in the request body")
			return false
		}
		seen |= bit
		off := base + offsetIn(topRaw, raw)
		switch bit {
		case rkModel:
			perr = readModel(&r, v)
			r.resp.model = [2]int{off, off + len(raw)}
		case rkInput:
			input = v
		case rkInstructions:
			switch v.Type {
			case gjson.String:
				r.resp.instrString = true
			case gjson.Null:
			default:
				perr = badType("instructions", "a string", v)
			}
			r.resp.instructions = [2]int{off, off + len(raw)}
		case rkStream:
			perr = readBool(&r.Stream, "stream", v)
		case rkText:
			perr = readResponsesText(&r, body, off, v)
		case rkTools:
			perr = readResponsesTools(&r, body, off, v)
		case rkToolChoice:
			perr = readResponsesToolChoice(&r, body, off, v)
		case rkParallelToolCalls:
			switch v.Type {
			case gjson.True, gjson.False:
				b := v.Type == gjson.True
				r.ParallelToolCalls = &b
			case gjson.Null:
			default:
				perr = badType("parallel_tool_calls", "a boolean", v)
			}
		case rkTemperature:
			if t, ok, e := checkNumber("temperature", numParams["temperature"], v); e != nil {
				perr = e
			} else if ok {
				r.Temperature, r.HasTemperature = t, true
			}
		case rkTopP:
			_, _, perr = checkNumber("top_p", numParams["top_p"], v)
		case rkMaxOutputTokens:
			maxOut = v
		case rkUser:
			perr = readString(&user, "user", v)
		case rkSafetyIdentifier:
			perr = readString(&safety, "safety_identifier", v)
		case rkPreviousResponseID:
			switch {
			case v.Type == gjson.Null:
			case v.Type != gjson.String:
				perr = badType("previous_response_id", "a string", v)
			case v.Str == "" || len(v.Str) > MaxResponseIDBytes || !ValidResponseID(v.Str):
				perr = reqErr("previous_response_id", "invalid 'previous_response_id': expected a response ID like 'resp_…'")
			default:
				r.resp.previousID = strings.Clone(v.Str)
			}
		case rkStore:
			var stored bool
			perr = readBool(&stored, "store", v)
			r.resp.noStore = v.Type == gjson.False // null is the default, true
		case rkConversation:
			// Conversations hold state at the provider as previous
			// responses do, but under IDs Cairn never sees created.
			if v.Type != gjson.Null {
				perr = reqErr("conversation", "'conversation' is not supported through this gateway; use 'previous_response_id'")
			}
		}
		return perr == nil
	})
	if perr != nil {
		return Request{}, perr
	}
	if r.Model == "" {
		return Request{}, reqErr("model", "you must provide a model parameter")
	}
	if perr = readResponsesInput(&r, input); perr != nil {
		return Request{}, perr
	}
	if r.ToolChoice != nil && r.Tools == nil {
		return Request{}, reqErr("tool_choice", "'tool_choice' is only allowed when 'tools' are specified")
	}
	n, perr := readTokens("max_output_tokens", maxOut)
	if perr != nil {
		return Request{}, perr
	}
	r.MaxTokens = n
	r.User = user
	if r.User == "" {
		r.User = safety
	}
	return r, nil
}

// ValidResponseID reports whether id can be a provider's response ID:
// letters, digits, '_' and '-' only, so that it is safe in a URL path, a
// Redis key and a record.
func ValidResponseID(id string) bool {
	if id == "" || len(id) > MaxResponseIDBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Stored reports whether the provider keeps the response (the API's
// default; false only for "store": false), so that it can be continued or
// retrieved later.
func (r *Request) Stored() bool { return !r.resp.noStore }

// PreviousResponseID returns the request's previous_response_id ("" when
// absent): the response whose state the provider continues.
func (r *Request) PreviousResponseID() string { return r.resp.previousID }

// readResponsesInput checks input: a string or an array of objects (items:
// messages with string or part content, function_call_output, …), with no
// repeated key anywhere inside (the masker and the upstream must read the
// same text).
func readResponsesInput(r *Request, v gjson.Result) *RequestError {
	switch {
	case !v.Exists() || v.Type == gjson.Null:
		return nil // a request may continue a previous response with tools only
	case v.Type == gjson.String:
		r.MessageCount = 1
		return nil
	case !v.IsArray():
		return badType("input", "a string or an array", v)
	}
	n := 0
	var perr *RequestError
	eachElement(v.Raw, func(raw string) bool {
		it := gjson.Parse(raw)
		n++
		// The path is built only for an error: this runs per item.
		if !it.IsObject() {
			perr = badType("input["+strconv.Itoa(n-1)+"]", "an object", it)
			return false
		}
		if d := findDupDeep("", it); d != "" {
			perr = dupErr("input[" + strconv.Itoa(n-1) + "]." + d)
			return false
		}
		return true
	})
	r.MessageCount = n
	return perr
}

// readResponsesText reads text.format into ResponseFormat and
// ResponseSchema: {"type":"json_schema","name":…,"schema":{…}} (the schema
// is a member of format itself, not nested as in chat) or
// {"type":"json_object"}.
func readResponsesText(r *Request, body []byte, off int, v gjson.Result) *RequestError {
	if ok, perr := readObject("text", v); !ok || perr != nil {
		return perr
	}
	f := v.Get("format")
	if ok, perr := readObject("text.format", f); !ok || perr != nil {
		return perr
	}
	if schema, perr := readFormatType(r, "text.format", f.Get("type")); !schema {
		return perr
	}
	s := f.Get("schema")
	switch {
	case !s.Exists() || s.Type == gjson.Null:
		return missing("text.format.schema")
	case !s.IsObject():
		return badType("text.format.schema", "an object", s)
	}
	r.ResponseSchema = sub(body, off+f.Index+s.Index, s.Raw)
	return nil
}

// readResponsesTools checks tools: function tools name their function and
// give parameters at the top level of the tool; hosted tools (web_search,
// file_search, mcp, …) pass through unchecked.
func readResponsesTools(r *Request, body []byte, off int, v gjson.Result) *RequestError {
	return readToolList(r, body, off, v, checkResponsesTool, false)
}

// checkResponsesTool checks one Responses tool: a function or custom tool
// names itself and gives parameters as an object on the tool itself.
func checkResponsesTool(i int, t gjson.Result) *RequestError {
	p, perr := toolObject(i, t)
	if perr != nil {
		return perr
	}
	typ := t.Get("type")
	switch {
	case !typ.Exists():
		return missing(p + ".type")
	case typ.Type != gjson.String:
		return badType(p+".type", "a string", typ)
	case typ.Str == "function" || typ.Str == "custom":
		return checkFunction(p, "", t)
	}
	return nil
}

func readResponsesToolChoice(r *Request, body []byte, off int, v gjson.Result) *RequestError {
	return readChoice(r, body, off, v, "invalid value for 'tool_choice': expected 'none', 'auto', 'required' or an object naming a tool", checkResponsesChoice)
}

// checkResponsesChoice checks a tool_choice object of the Responses API.
func checkResponsesChoice(v gjson.Result) *RequestError {
	switch v.Get("type").Str {
	case "function", "custom":
		if n := v.Get("name"); n.Type != gjson.String || n.Str == "" {
			return reqErr("tool_choice.name", "invalid 'tool_choice.name': expected a non-empty string")
		}
	case "allowed_tools":
		if m := v.Get("mode"); m.Type != gjson.String || (m.Str != "auto" && m.Str != "required") {
			return reqErr("tool_choice.mode", "invalid value for 'tool_choice.mode': expected 'auto' or 'required'")
		}
	case "":
		return missing("tool_choice.type")
	}
	return nil
}
