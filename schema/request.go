package schema

import (
	"strconv"
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

	// resp is what ParseResponsesRequest reads beyond the fields above
	// (responses.go).
	resp responsesFields
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
