package schema

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/internal/jsonscan"
)

// MaxRequestDepth bounds how deeply a request body may nest objects and
// arrays. Deeper bodies are refused with 400 before any other parsing.
const MaxRequestDepth = 64

// MaxModelBytes bounds the client's model name. Longer names are refused
// with 400 before they are copied: the name reaches records, spans and
// headers, and 300 requests with 1 MiB names once took the gateway from
// 22 MiB to 2.5 GiB (issue 12.7).
const MaxModelBytes = 256

// Request is what Cairn reads from a raw chat completions or embeddings
// request body. It is produced by ParseChatRequest or ParseEmbeddingsRequest.
//
// String fields are owned copies. The byte-slice fields ResponseSchema, Tools
// and ToolChoice alias the body the request was parsed from: they are valid
// only while that body is (for a fasthttp handler, until it returns) and must
// not be modified. Copy them before keeping them longer.
type Request struct {
	// Model is the client's model name (the route name).
	Model string
	// Stream is the request's "stream".
	Stream bool
	// IncludeUsage is stream_options.include_usage.
	IncludeUsage bool
	// User is "user", else "safety_identifier"; empty if neither is set.
	User string
	// ResponseFormat is response_format.type: "", "text", "json_object" or
	// "json_schema".
	ResponseFormat string
	// ResponseSchema is the raw response_format.json_schema.schema; nil if
	// absent. Aliases the body.
	ResponseSchema []byte
	// Tools is the raw "tools" array; nil if absent, null or empty. Aliases
	// the body.
	Tools []byte
	// ToolCount is the number of elements of Tools.
	ToolCount int
	// ToolChoice is the raw "tool_choice" value; nil if absent or null.
	// Aliases the body.
	ToolChoice []byte
	// ParallelToolCalls is "parallel_tool_calls"; nil if absent or null
	// (the API's default is true).
	ParallelToolCalls *bool
	// Temperature is "temperature" when HasTemperature; HasTemperature is
	// false when it is absent or null. (A value, not a pointer: the
	// pointer cost every request an allocation, issue 15.)
	Temperature    float64
	HasTemperature bool
	// MaxTokens is max_completion_tokens, else max_tokens; 0 if neither.
	MaxTokens int
	// MessageCount is the number of chat messages (0 for embeddings).
	MessageCount int

	spans topSpans // for Rewrite
}

// RequestError is a mistake in the client's request. The proxy answers it
// with HTTP 400 and OpenAI's error shape, type invalid_request_error, with
// Param as the error's param. Message never contains request content beyond
// field names, so it is safe to log.
type RequestError struct {
	// Param names the offending field (e.g. "messages",
	// "tools[1].function.parameters"); empty when the body as a whole is bad.
	Param string
	// Message says what is wrong, in lowercase, without trailing punctuation.
	Message string
}

func (e *RequestError) Error() string {
	if e.Param == "" {
		return e.Message
	}
	return e.Param + ": " + e.Message
}

func reqErr(param, msg string) *RequestError { return &RequestError{Param: param, Message: msg} }

func missing(param string) *RequestError {
	return reqErr(param, "missing required parameter: '"+param+"'")
}

func badType(param, want string, got gjson.Result) *RequestError {
	return reqErr(param, "invalid type for '"+param+"': expected "+want+", but got "+typeName(got)+" instead")
}

func typeName(r gjson.Result) string {
	switch r.Type {
	case gjson.Null:
		return "null"
	case gjson.False, gjson.True:
		return "a boolean"
	case gjson.Number:
		return "a number"
	case gjson.String:
		return "a string"
	default:
		if r.IsArray() {
			return "an array"
		}
		return "an object"
	}
}

// parseBody checks the things every request body must satisfy and returns
// the parsed top-level object and its offset in body.
func parseBody(body []byte) (gjson.Result, int, error) {
	if len(trimSpace(body)) == 0 {
		return gjson.Result{}, 0, reqErr("", "we could not parse the JSON body of your request: the body is empty")
	}
	// One iterative pass checks UTF-8, grammar and depth together before
	// any recursive reader sees the body: gjson.ValidBytes recurses once
	// per level, and ~5.6 MiB of '[' overflowed the stack (issue 12.1),
	// which no recover catches; UTF-8 was a pass of its own (issue 15).
	if res, _ := jsonscan.CheckUTF8(body, MaxRequestDepth); res != jsonscan.OK {
		// A body that is not UTF-8 anywhere is reported as such first, as
		// when utf8.Valid ran before the scan.
		if res == jsonscan.InvalidUTF8 || !utf8.Valid(body) {
			return gjson.Result{}, 0, reqErr("", "we could not parse the JSON body of your request: it is not valid UTF-8")
		}
		if res == jsonscan.TooDeep {
			return gjson.Result{}, 0, reqErr("", "the request body nests deeper than "+strconv.Itoa(MaxRequestDepth)+" levels")
		}
		return gjson.Result{}, 0, reqErr("", "we could not parse the JSON body of your request: "+invalidJSONDetail(body))
	}
	top, base := parseTop(body)
	if !top.IsObject() {
		return gjson.Result{}, 0, reqErr("", "the request body must be a JSON object, not "+typeName(top))
	}
	return top, base, nil
}

// invalidJSONDetail says where encoding/json finds body invalid. It runs
// only on the error path.
func invalidJSONDetail(body []byte) string {
	var v json.RawMessage
	err := json.Unmarshal(body, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off := max(se.Offset-1, 0) // the offending byte
		if se.Offset >= int64(len(body)) && strings.HasPrefix(se.Error(), "unexpected end") {
			return "invalid JSON at offset " + strconv.Itoa(len(body)) + " (unexpected end)"
		}
		return "invalid JSON at offset " + strconv.FormatInt(off, 10)
	}
	return "invalid JSON"
}

// Bits of the top-level keys Cairn interprets; a body that repeats one of
// them is refused, because the gateway and the upstream could read
// different values (gjson takes the first, most servers the last).
const (
	kModel uint32 = 1 << iota
	kMessages
	kStream
	kStreamOptions
	kUser
	kSafetyIdentifier
	kResponseFormat
	kTools
	kToolChoice
	kTemperature
	kMaxTokens
	kMaxCompletionTokens
	kParallelToolCalls
	kInput
)

func keyBit(k string) uint32 {
	switch k {
	case "model":
		return kModel
	case "messages":
		return kMessages
	case "stream":
		return kStream
	case "stream_options":
		return kStreamOptions
	case "user":
		return kUser
	case "safety_identifier":
		return kSafetyIdentifier
	case "response_format":
		return kResponseFormat
	case "tools":
		return kTools
	case "tool_choice":
		return kToolChoice
	case "temperature":
		return kTemperature
	case "max_tokens":
		return kMaxTokens
	case "max_completion_tokens":
		return kMaxCompletionTokens
	case "parallel_tool_calls":
		return kParallelToolCalls
	case "input":
		return kInput
	}
	return 0
}

// ParseChatRequest reads a /v1/chat/completions request body. It returns a
// *RequestError for a body a client of OpenAI would get 400 for: empty, not
// UTF-8, not JSON, not an object, nested deeper than MaxRequestDepth, a
// repeated interpreted key, a missing or non-string model, messages missing,
// not an array or empty, or a field of the wrong type. The returned
// Request's byte-slice fields alias body (see Request). Safe for concurrent
// use; body is only read.
func ParseChatRequest(body []byte) (Request, error) {
	top, base, err := parseBody(body)
	if err != nil {
		return Request{}, err
	}
	var (
		r        = Request{spans: topSpans{ok: true, base: base, topEmpty: isEmptyObject(top.Raw)}}
		seen     uint32
		perr     *RequestError
		messages gjson.Result
		maxTok   gjson.Result
		maxComp  gjson.Result
		safety   string
		user     string
	)
	topRaw := top.Raw
	eachMember(topRaw, func(key, raw string) bool {
		k := gjson.Result{Type: gjson.String, Str: key}
		v := gjson.Parse(raw)
		bit := keyBit(k.Str)
		if bit == 0 {
			if p, ok := numParams[k.Str]; ok {
				_, _, perr = checkNumber(k.Str, p, v)
			}
			return perr == nil
		}
		if seen&bit != 0 {
			perr = reqErr(k.Str, "duplicate key '"+k.Str+"' in the request body")
			return false
		}
		seen |= bit
		off := base + offsetIn(topRaw, raw)
		r.spans.note(bit, off, len(v.Raw))
		switch bit {
		case kModel:
			perr = readModel(&r, v)
		case kMessages:
			messages = v
		case kStream:
			perr = readBool(&r.Stream, "stream", v)
		case kStreamOptions:
			perr = readStreamOptions(&r, v)
		case kUser:
			perr = readString(&user, "user", v)
		case kSafetyIdentifier:
			perr = readString(&safety, "safety_identifier", v)
		case kResponseFormat:
			perr = readResponseFormat(&r, body, off, v)
		case kTools:
			perr = readTools(&r, body, off, v)
		case kToolChoice:
			perr = readToolChoice(&r, body, off, v)
		case kTemperature:
			if t, ok, e := checkNumber("temperature", numParams["temperature"], v); e != nil {
				perr = e
			} else if ok {
				r.Temperature, r.HasTemperature = t, true
			}
		case kMaxTokens:
			maxTok = v
		case kMaxCompletionTokens:
			maxComp = v
		case kParallelToolCalls:
			switch v.Type {
			case gjson.True, gjson.False:
				b := v.Type == gjson.True
				r.ParallelToolCalls = &b
			case gjson.Null:
			default:
				perr = badType("parallel_tool_calls", "a boolean", v)
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
	if perr = readMessages(&r, messages); perr != nil {
		return Request{}, perr
	}
	if seen&kStreamOptions != 0 && !r.Stream && r.IncludeUsage {
		return Request{}, reqErr("stream_options", "the 'stream_options' parameter is only allowed when 'stream' is enabled")
	}
	if r.ToolChoice != nil && r.Tools == nil {
		return Request{}, reqErr("tool_choice", "'tool_choice' is only allowed when 'tools' are specified")
	}
	n, perr := readTokens("max_tokens", maxTok)
	if perr != nil {
		return Request{}, perr
	}
	r.MaxTokens = n
	if n, perr = readTokens("max_completion_tokens", maxComp); perr != nil {
		return Request{}, perr
	} else if maxComp.Exists() && maxComp.Type != gjson.Null {
		r.MaxTokens = n
	}
	r.User = user
	if r.User == "" {
		r.User = safety
	}
	return r, nil
}

// ParseEmbeddingsRequest reads a /v1/embeddings request body: model and
// input are required (input a string or a non-empty array). Errors are
// *RequestError as for ParseChatRequest. Safe for concurrent use.
func ParseEmbeddingsRequest(body []byte) (Request, error) {
	top, _, err := parseBody(body)
	if err != nil {
		return Request{}, err
	}
	var (
		r      Request
		seen   uint32
		perr   *RequestError
		input  gjson.Result
		user   string
		safety string
	)
	top.ForEach(func(k, v gjson.Result) bool {
		bit := keyBit(k.Str)
		if bit == 0 {
			if p, ok := embeddingsNumParams[k.Str]; ok {
				_, _, perr = checkNumber(k.Str, p, v)
			}
			return perr == nil
		}
		if seen&bit != 0 {
			perr = reqErr(k.Str, "duplicate key '"+k.Str+"' in the request body")
			return false
		}
		seen |= bit
		switch bit {
		case kModel:
			perr = readModel(&r, v)
		case kInput:
			input = v
		case kUser:
			perr = readString(&user, "user", v)
		case kSafetyIdentifier:
			perr = readString(&safety, "safety_identifier", v)
		}
		return perr == nil
	})
	if perr != nil {
		return Request{}, perr
	}
	if r.Model == "" {
		return Request{}, reqErr("model", "you must provide a model parameter")
	}
	switch {
	case !input.Exists() || input.Type == gjson.Null:
		return Request{}, missing("input")
	case input.Type == gjson.String:
	case input.IsArray():
		if isEmptyArray(input.Raw) {
			return Request{}, reqErr("input", "invalid 'input': empty array; expected at least one input")
		}
	default:
		return Request{}, badType("input", "a string or an array", input)
	}
	r.User = user
	if r.User == "" {
		r.User = safety
	}
	return r, nil
}

func readModel(r *Request, v gjson.Result) *RequestError {
	switch v.Type {
	case gjson.String:
		if len(v.Str) > MaxModelBytes {
			return reqErr("model", "invalid 'model': longer than "+strconv.Itoa(MaxModelBytes)+" bytes")
		}
		r.Model = strings.Clone(v.Str)
		return nil
	case gjson.Null:
		return nil // reported as missing
	}
	return badType("model", "a string", v)
}

func readBool(dst *bool, param string, v gjson.Result) *RequestError {
	switch v.Type {
	case gjson.True:
		*dst = true
	case gjson.False, gjson.Null:
		*dst = false
	default:
		return badType(param, "a boolean", v)
	}
	return nil
}

func readString(dst *string, param string, v gjson.Result) *RequestError {
	switch v.Type {
	case gjson.String:
		*dst = strings.Clone(v.Str)
	case gjson.Null:
	default:
		return badType(param, "a string", v)
	}
	return nil
}

func readTokens(param string, v gjson.Result) (int, *RequestError) {
	switch {
	case !v.Exists() || v.Type == gjson.Null:
		return 0, nil
	case v.Type != gjson.Number:
		return 0, badType(param, "an integer", v)
	case v.Num != math.Trunc(v.Num) || v.Num < 0 || v.Num > math.MaxInt32:
		return 0, reqErr(param, "invalid '"+param+"': expected a non-negative integer")
	}
	return int(v.Num), nil
}

func readStreamOptions(r *Request, v gjson.Result) *RequestError {
	switch {
	case v.Type == gjson.Null:
		return nil
	case !v.IsObject():
		return badType("stream_options", "an object", v)
	}
	if perr := checkDup("stream_options", v); perr != nil {
		return perr
	}
	var perr *RequestError
	v.ForEach(func(k, o gjson.Result) bool {
		if k.Str == "include_usage" {
			perr = readBool(&r.IncludeUsage, "stream_options.include_usage", o)
		}
		return perr == nil
	})
	return perr
}

func readMessages(r *Request, v gjson.Result) *RequestError {
	switch {
	case !v.Exists() || v.Type == gjson.Null:
		return missing("messages")
	case !v.IsArray():
		return badType("messages", "an array", v)
	}
	var perr *RequestError
	n := 0
	eachElement(v.Raw, func(raw string) bool {
		m := gjson.Parse(raw)
		if !m.IsObject() {
			perr = badType("messages["+strconv.Itoa(n)+"]", "an object", m)
			return false
		}
		var role gjson.Result
		if perr = checkMessage(n, raw, &role); perr != nil {
			return false
		}
		switch {
		case !role.Exists():
			perr = missing("messages[" + strconv.Itoa(n) + "].role")
		case role.Type != gjson.String:
			perr = badType("messages["+strconv.Itoa(n)+"].role", "a string", role)
		}
		n++
		return perr == nil
	})
	if perr != nil {
		return perr
	}
	if n == 0 {
		return reqErr("messages", "invalid 'messages': empty array; expected at least one message")
	}
	r.MessageCount = n
	return nil
}

// readResponseFormat reads response_format; base is the offset of v in
// body (gjson Index values of what is inside v are relative to it).
func readResponseFormat(r *Request, body []byte, base int, v gjson.Result) *RequestError {
	switch {
	case v.Type == gjson.Null:
		return nil
	case !v.IsObject():
		return badType("response_format", "an object", v)
	}
	if perr := checkDup("response_format", v); perr != nil {
		return perr
	}
	var typ, js gjson.Result
	v.ForEach(func(k, o gjson.Result) bool {
		switch k.Str {
		case "type":
			typ = o
		case "json_schema":
			js = o
		}
		return true
	})
	switch {
	case !typ.Exists():
		return missing("response_format.type")
	case typ.Type != gjson.String:
		return badType("response_format.type", "a string", typ)
	}
	switch typ.Str {
	case "text":
		r.ResponseFormat = "text"
	case "json_object":
		r.ResponseFormat = "json_object"
	case "json_schema":
		r.ResponseFormat = "json_schema"
		switch {
		case !js.Exists() || js.Type == gjson.Null:
			return missing("response_format.json_schema")
		case !js.IsObject():
			return badType("response_format.json_schema", "an object", js)
		}
		if perr := checkDup("response_format.json_schema", js); perr != nil {
			return perr
		}
		var perr *RequestError
		js.ForEach(func(k, o gjson.Result) bool {
			if k.Str != "schema" {
				return true
			}
			switch {
			case o.IsObject():
				r.ResponseSchema = sub(body, base+o.Index, o.Raw)
			case o.Type == gjson.Null:
			default:
				perr = badType("response_format.json_schema.schema", "an object", o)
			}
			return false
		})
		return perr
	default:
		return reqErr("response_format.type", "invalid value for 'response_format.type': expected one of 'text', 'json_object' or 'json_schema'")
	}
	return nil
}

func readTools(r *Request, body []byte, off int, v gjson.Result) *RequestError {
	switch {
	case v.Type == gjson.Null:
		return nil
	case !v.IsArray():
		return badType("tools", "an array", v)
	}
	var perr *RequestError
	n := 0
	v.ForEach(func(_, t gjson.Result) bool {
		perr = checkTool(n, t)
		n++
		return perr == nil
	})
	if perr != nil {
		return perr
	}
	if n == 0 {
		return reqErr("tools", "invalid 'tools': empty array; expected at least one tool")
	}
	r.Tools = sub(body, off, v.Raw)
	r.ToolCount = n
	return nil
}

// checkTool checks the shape Cairn relies on: a function tool names its
// function with a non-empty string and gives parameters as an object. The
// parameters are compiled later, by Contracts.Prepare.
func checkTool(i int, t gjson.Result) *RequestError {
	p := "tools[" + strconv.Itoa(i) + "]"
	if !t.IsObject() {
		return badType(p, "an object", t)
	}
	if perr := checkDup(p, t); perr != nil {
		return perr
	}
	for _, sub := range [...]string{"function", "custom"} {
		if perr := checkDup(p+"."+sub, t.Get(sub)); perr != nil {
			return perr
		}
	}
	typ := t.Get("type")
	switch {
	case !typ.Exists():
		return missing(p + ".type")
	case typ.Type != gjson.String:
		return badType(p+".type", "a string", typ)
	}
	switch typ.Str {
	case "function":
		fn := t.Get("function")
		switch {
		case !fn.Exists():
			return missing(p + ".function")
		case !fn.IsObject():
			return badType(p+".function", "an object", fn)
		}
		name := fn.Get("name")
		switch {
		case !name.Exists():
			return missing(p + ".function.name")
		case name.Type != gjson.String:
			return badType(p+".function.name", "a string", name)
		case name.Str == "":
			return reqErr(p+".function.name", "invalid '"+p+".function.name': empty string")
		}
		if ps := fn.Get("parameters"); ps.Exists() && ps.Type != gjson.Null && !ps.IsObject() {
			return badType(p+".function.parameters", "an object", ps)
		}
	case "custom":
		name := t.Get("custom.name")
		if name.Type != gjson.String || name.Str == "" {
			return reqErr(p+".custom.name", "invalid '"+p+".custom.name': expected a non-empty string")
		}
	}
	return nil
}

func readToolChoice(r *Request, body []byte, off int, v gjson.Result) *RequestError {
	switch {
	case v.Type == gjson.Null:
		return nil
	case v.Type == gjson.String:
		switch v.Str {
		case "none", "auto", "required":
		default:
			return reqErr("tool_choice", "invalid value for 'tool_choice': expected 'none', 'auto', 'required' or an object naming a function")
		}
	case v.IsObject():
		if perr := findDupDeep("tool_choice", v); perr != "" {
			return dupErr(perr)
		}
		switch v.Get("type").Str {
		case "function":
			if n := v.Get("function.name"); n.Type != gjson.String || n.Str == "" {
				return reqErr("tool_choice.function.name", "invalid 'tool_choice.function.name': expected a non-empty string")
			}
		case "custom":
			if n := v.Get("custom.name"); n.Type != gjson.String || n.Str == "" {
				return reqErr("tool_choice.custom.name", "invalid 'tool_choice.custom.name': expected a non-empty string")
			}
		case "allowed_tools":
			if m := v.Get("allowed_tools.mode"); m.Type != gjson.String || (m.Str != "auto" && m.Str != "required") {
				return reqErr("tool_choice.allowed_tools.mode", "invalid value for 'tool_choice.allowed_tools.mode': expected 'auto' or 'required'")
			}
		default:
			return reqErr("tool_choice.type", "invalid value for 'tool_choice.type': expected 'function', 'custom' or 'allowed_tools'")
		}
	default:
		return badType("tool_choice", "a string or an object", v)
	}
	r.ToolChoice = sub(body, off, v.Raw)
	return nil
}

func isEmptyArray(raw string) bool {
	for i := 1; i < len(raw); i++ {
		if !isSpace(raw[i]) {
			return raw[i] == ']'
		}
	}
	return true
}
