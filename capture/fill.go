package capture

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Header capture. The proxy may pass any request headers in Record.Headers;
// the writer keeps only allowedHeaders, drops any name that looks like a
// credential even if allow-listed, masks the values and bounds their size.
var allowedHeaders = map[string]bool{
	"user-agent":          true,
	"x-client-name":       true,
	"x-request-id":        true,
	"x-client-request-id": true,
	"content-type":        true,
	"content-length":      true,
	"accept":              true,
	"accept-encoding":     true,
	"openai-beta":         true,
	"traceparent":         true,
	"tracestate":          true,
	"x-forwarded-for":     true, // masked: client IPs become [IPV4]/[IPV6]
}

// headerDenyWords mark header names that are never captured.
var headerDenyWords = []string{"auth", "key", "token", "secret", "cookie", "password", "session", "signature", "credential"}

// maxHeaderValue bounds one captured header value.
const maxHeaderValue = 1024

// headerAllowed reports whether the lower-case header name is captured.
// The OpenAI SDKs' x-stainless-* headers (language, version, OS, retry
// count) are kept.
func headerAllowed(name string) bool {
	for _, w := range headerDenyWords {
		if strings.Contains(name, w) {
			return false
		}
	}
	return allowedHeaders[name] || strings.HasPrefix(name, "x-stainless-")
}

// maskHeaders returns the allow-listed, masked headers of h, or nil. It
// reuses h (which the writer owns) when every name is already lower case
// and trimmed, as the proxy passes them.
func (m *Masker) maskHeaders(h map[string]string) map[string]string {
	inPlace := true
	for k := range h {
		if strings.TrimSpace(k) != k || hasUpper(k) {
			inPlace = false
			break
		}
	}
	if inPlace {
		for k, v := range h {
			if !headerAllowed(k) {
				delete(h, k)
				continue
			}
			if len(v) > maxHeaderValue {
				v = truncateAt(v, maxHeaderValue)
			}
			if idHeaders[k] {
				h[k] = m.maskID(v)
			} else {
				h[k] = m.String(v)
			}
		}
		if len(h) == 0 {
			return nil
		}
		return h
	}
	var out map[string]string
	for k, v := range h {
		name := strings.ToLower(strings.TrimSpace(k))
		if !headerAllowed(name) {
			continue
		}
		if len(v) > maxHeaderValue {
			v = truncateAt(v, maxHeaderValue)
		}
		if out == nil {
			out = make(map[string]string, len(h))
		}
		if idHeaders[name] {
			out[name] = m.maskID(v)
		} else {
			out[name] = m.String(v)
		}
	}
	return out
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c >= 0x80 {
			return true
		}
	}
	return false
}

// truncateAt cuts s to at most n bytes at a rune boundary and marks the cut.
func truncateAt(s string, n int) string {
	for n > 0 && n < len(s) && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + truncatedMark
}

// maskRecord masks every client- or provider-supplied string of r in
// place, fills Request and Response from r.Raw when keep is true, and
// clears r.Raw. Request and Response are compact JSON (one line). If
// masking either fails, it is stored as "[MASKING_FAILED]".
func (m *Masker) maskRecord(r *Record, keep bool) {
	raw := r.Raw
	r.Raw = nil
	r.Request, r.Response = nil, nil
	r.BodySampled = false
	if keep && raw != nil {
		if r.Endpoint == "responses" {
			r.Request = m.responsesRequest(raw.RequestBody)
		} else {
			r.Request = m.requestMessages(raw.RequestBody, raw.RequestValid)
		}
		r.Response = m.response(r.Endpoint, r.Status, raw)
		r.Request, r.Response = shallow(r.Request), shallow(r.Response)
		r.BodySampled = r.Request != nil || r.Response != nil
	}
	r.Error = m.String(r.Error)
	r.Client = m.String(r.Client)
	r.ClientRequestID = m.maskID(r.ClientRequestID)
	r.RequestedModel = m.String(r.RequestedModel)
	r.Route = m.String(r.Route)
	r.Model = m.String(r.Model)
	for i, reason := range r.Contract.Reasons {
		r.Contract.Reasons[i] = m.String(reason)
	}
	for i := range r.Attempts {
		r.Attempts[i].Error = m.String(r.Attempts[i].Error)
		r.Attempts[i].Model = m.String(r.Attempts[i].Model)
	}
	r.Headers = m.maskHeaders(r.Headers)
}

// requestMessages returns the masked messages (chat) or input (embeddings)
// of a request body; the whole masked body when it has neither; nil when
// the body is empty. A body that is not JSON is masked as one string;
// valid says it is known to be JSON.
func (m *Masker) requestMessages(body []byte, valid bool) (out json.RawMessage) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	defer func() {
		if recover() != nil {
			out = append(json.RawMessage(nil), maskingFailedJSON...)
		}
	}()
	if !valid && !validJSON(body) {
		return appendJSONString(nil, m.maskValue(string(body)))
	}
	for _, key := range []string{"messages", "input", "prompt"} {
		if v := objectField(body, key); v != nil {
			return m.appendJSON(make([]byte, 0, len(v)), v, 0, true, true)
		}
	}
	return m.appendJSON(make([]byte, 0, len(body)), body, 0, true, true)
}

// response returns the masked response as compact JSON: for a stream the
// accumulated content, tool calls and finish reason (and the error that
// broke it); for a successful chat completion the first choice's content,
// refusal, tool calls (a legacy function_call becomes a one-element list)
// and finish reason, and the number of choices when there are several;
// for embeddings only the count of vectors; otherwise (an error body, or a
// body of another shape) the whole masked body. The fields are read
// straight from the body; nothing is decoded into maps.
func (m *Masker) response(endpoint string, status int, raw *RawBodies) (out json.RawMessage) {
	defer func() {
		if recover() != nil {
			out = append(json.RawMessage(nil), maskingFailedJSON...)
		}
	}()
	if raw.StreamContent != "" || len(raw.StreamToolCalls) > 0 || raw.FinishReason != "" {
		// Escaping grows text (quotes in JSON content): room for it up
		// front, and the scratch a field is quoted in, sized once.
		n := len(raw.StreamContent) + len(raw.StreamToolCalls) + len(raw.ResponseBody)
		o := responseObject{m: m, b: make([]byte, 0, n+n/4+64), tok: make([]byte, 0, len(raw.StreamContent)+len(raw.StreamContent)/4+32)}
		if raw.StreamContent != "" {
			o.stringField("content", raw.StreamContent)
		}
		if len(raw.StreamToolCalls) > 0 {
			o.validOrStringField("tool_calls", raw.StreamToolCalls)
		}
		if raw.FinishReason != "" {
			o.stringField("finish_reason", raw.FinishReason)
		}
		if len(bytes.TrimSpace(raw.ResponseBody)) > 0 {
			o.validOrStringField("error", raw.ResponseBody)
		}
		return o.end()
	}
	body := raw.ResponseBody
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	valid := validJSON(body)
	if valid && status >= 200 && status < 300 {
		// A choices (or, without choices, a data) that is not an array
		// or null, or choices that are not objects, make it not a chat
		// or embeddings response: the whole body is masked below.
		var top [1][]byte
		// (A null body decodes like an empty object.)
		isObject := objectFields(body, []string{"choices"}, top[:]) || string(bytes.TrimSpace(body)) == "null"
		choices, ok := arrayValue(top[0])
		n := 0
		if ok {
			n, ok = countArray(choices, true)
		}
		switch {
		case !isObject || !ok:
		case n > 0:
			if out, ok := m.firstChoice(choices, n); ok {
				return out
			}
		default:
			objectFields(body, []string{"data"}, top[:])
			if data, ok := arrayValue(top[0]); ok && (endpoint == "embeddings" || data != nil) {
				n, _ := countArray(data, false)
				return fmt.Appendf(nil, `{"embeddings":%d}`, n)
			}
		}
	}
	if !valid {
		return appendJSONString(nil, m.maskValue(string(body)))
	}
	return m.appendJSON(make([]byte, 0, len(body)), body, 0, true, true)
}

// firstChoice masks the first of the n choices of a valid chat completion.
// ok is false when its message or finish_reason has the wrong type.
func (m *Masker) firstChoice(choices []byte, n int) (json.RawMessage, bool) {
	first := choices[skipSpace(choices, 1):]
	first = first[:skipValue(first, 0)]
	var c [2][]byte
	objectFields(first, []string{"message", "finish_reason"}, c[:])
	msg, finish := c[0], c[1]
	if msg != nil && msg[0] != '{' && !isNull(msg) || finish != nil && finish[0] != '"' && !isNull(finish) {
		return nil, false
	}
	o := responseObject{m: m, b: make([]byte, 0, len(first)+32)}
	if msg != nil && msg[0] == '{' {
		var f [4][]byte
		objectFields(msg, []string{"content", "refusal", "tool_calls", "function_call"}, f[:])
		content, refusal, toolCalls, fc := f[0], f[1], f[2], f[3]
		o.rawField("content", content)
		o.rawField("refusal", refusal)
		if !isNull(toolCalls) {
			o.rawField("tool_calls", toolCalls)
		} else if !isNull(fc) {
			o.key("tool_calls")
			o.b = append(o.b, '[')
			o.b = m.appendJSON(o.b, fc, 0, true, true)
			o.b = append(o.b, ']')
		}
	}
	if finish != nil && finish[0] == '"' && len(finish) > 2 {
		o.rawField("finish_reason", finish)
	}
	if n > 1 {
		o.key("choices")
		o.b = strconv.AppendInt(o.b, int64(n), 10)
	}
	return o.end(), true
}

func isNull(v []byte) bool { return v == nil || string(v) == "null" }

// arrayValue returns v when it is an array (data != nil), nil when v is
// absent or null; ok is false for any other type.
func arrayValue(v []byte) (data []byte, ok bool) {
	switch {
	case isNull(v):
		return nil, true
	case v[0] == '[':
		return v, true
	}
	return nil, false
}

// countArray counts the elements of the valid array arr (nil: 0). With
// objects, ok is false when an element is neither an object nor null.
func countArray(arr []byte, objects bool) (n int, ok bool) {
	if arr == nil {
		return 0, true
	}
	i := skipSpace(arr, 1)
	for i < len(arr) && arr[i] != ']' {
		if objects && arr[i] != '{' && arr[i] != 'n' {
			return 0, false
		}
		i = skipSpace(arr, skipValue(arr, i))
		n++
		if i < len(arr) && arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
	}
	return n, true
}

// responseObject builds the masked response object field by field.
type responseObject struct {
	m   *Masker
	b   []byte
	tok []byte // stringField's scratch: one buffer for every field
}

func (o *responseObject) key(k string) {
	if len(o.b) == 0 {
		o.b = append(o.b, '{')
	} else {
		o.b = append(o.b, ',')
	}
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

// rawField adds a valid JSON value, masked; absent and null values are
// left out.
func (o *responseObject) rawField(k string, v []byte) {
	if isNull(v) {
		return
	}
	o.key(k)
	o.b = o.m.appendJSON(o.b, v, 0, true, true)
}

// stringField adds s as a masked string value (JSON held in it is masked
// value by value).
func (o *responseObject) stringField(k, s string) {
	o.key(k)
	o.tok = appendJSONString(o.tok[:0], s)
	o.b = o.m.appendMaskedString(o.b, o.tok, false, 0)
}

// validOrStringField adds b, masked: as JSON when it is valid, else as a
// string.
func (o *responseObject) validOrStringField(k string, b []byte) {
	if validJSON(b) {
		o.key(k)
		o.b = o.m.appendJSON(o.b, b, 0, true, true)
		return
	}
	o.stringField(k, string(b))
}

func (o *responseObject) end() json.RawMessage {
	if len(o.b) == 0 {
		return json.RawMessage("{}")
	}
	return append(o.b, '}')
}
