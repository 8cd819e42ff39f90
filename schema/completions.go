package schema

import "github.com/tidwall/gjson"

// ParseCompletionsRequest reads a legacy /v1/completions request body:
// model and prompt are required (prompt a string, an array of strings or
// an array of token arrays); stream, stream_options, user,
// safety_identifier, temperature and max_tokens are read as for chat.
// Errors are *RequestError as for ParseChatRequest. Safe for concurrent
// use; body is only read.
func ParseCompletionsRequest(body []byte) (Request, error) {
	top, _, err := parseBody(body)
	if err != nil {
		return Request{}, err
	}
	var (
		r            Request
		perr         *RequestError
		prompt       gjson.Result
		maxTok       gjson.Result
		user, safety string
		seen         = map[string]bool{}
	)
	top.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model", "prompt", "stream", "stream_options", "user", "safety_identifier", "temperature", "max_tokens":
		default:
			if p, ok := completionsNumParams[k.Str]; ok {
				_, _, perr = checkNumber(k.Str, p, v)
			}
			return perr == nil
		}
		if seen[k.Str] {
			perr = reqErr(k.Str, "duplicate key '"+k.Str+"' in the request body")
			return false
		}
		seen[k.Str] = true
		switch k.Str {
		case "model":
			perr = readModel(&r, v)
		case "prompt":
			prompt = v
		case "stream":
			perr = readBool(&r.Stream, "stream", v)
		case "stream_options":
			perr = readStreamOptions(&r, v)
		case "user":
			perr = readString(&user, "user", v)
		case "safety_identifier":
			perr = readString(&safety, "safety_identifier", v)
		case "temperature":
			// Checked as on chat (issue 12.2): 1e999 read as +Inf was
			// forwarded and recorded as 0.
			if t, ok, e := checkNumber("temperature", completionsNumParams["temperature"], v); e != nil {
				perr = e
			} else if ok {
				r.Temperature, r.HasTemperature = t, true
			}
		case "max_tokens":
			maxTok = v
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
	case !prompt.Exists() || prompt.Type == gjson.Null:
		return Request{}, missing("prompt")
	case prompt.Type == gjson.String, prompt.IsArray():
	default:
		return Request{}, badType("prompt", "a string or an array", prompt)
	}
	if r.MaxTokens, perr = readTokens("max_tokens", maxTok); perr != nil {
		return Request{}, perr
	}
	r.User = user
	if r.User == "" {
		r.User = safety
	}
	return r, nil
}
