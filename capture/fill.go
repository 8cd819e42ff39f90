package capture

import (
	"bytes"
	"encoding/json"
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

// maskHeaders returns the allow-listed, masked headers of h, or nil.
func (m *Masker) maskHeaders(h map[string]string) map[string]string {
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
		out[name] = m.String(v)
	}
	return out
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
// clears r.Raw.
func (m *Masker) maskRecord(r *Record, keep bool) {
	raw := r.Raw
	r.Raw = nil
	r.Request, r.Response = nil, nil
	r.BodySampled = false
	if keep && raw != nil {
		r.Request = m.requestMessages(raw.RequestBody)
		r.Response = m.response(r.Endpoint, r.Status, raw)
		r.BodySampled = r.Request != nil || r.Response != nil
	}
	r.Error = m.String(r.Error)
	r.Client = m.String(r.Client)
	r.ClientRequestID = m.String(r.ClientRequestID)
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
// the body is empty.
func (m *Masker) requestMessages(body []byte) json.RawMessage {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if !json.Valid(body) {
		return m.JSON(body) // masked as one string
	}
	for _, key := range []string{"messages", "input", "prompt"} {
		if v := objectField(body, key); v != nil {
			return m.maskValidJSON(v)
		}
	}
	return m.maskValidJSON(body)
}

// maskValidJSON is JSON for a document already known to be valid.
func (m *Masker) maskValidJSON(raw []byte) (out json.RawMessage) {
	defer func() {
		if recover() != nil {
			out = append(json.RawMessage(nil), maskingFailedJSON...)
		}
	}()
	return m.appendJSON(nil, raw, 0, true)
}

// response returns the masked response: for a stream the accumulated
// content, tool calls and finish reason; for a successful chat completion
// the first choice's content, tool calls and finish reason; for embeddings
// only the count of vectors; otherwise (an error body) the masked body.
func (m *Masker) response(endpoint string, status int, raw *RawBodies) json.RawMessage {
	type out struct {
		Content      json.RawMessage `json:"content,omitempty"` // a string, or parts
		Refusal      json.RawMessage `json:"refusal,omitempty"`
		ToolCalls    json.RawMessage `json:"tool_calls,omitempty"`
		FinishReason string          `json:"finish_reason,omitempty"`
		Choices      int             `json:"choices,omitempty"` // when the provider returned more than one
		Error        json.RawMessage `json:"error,omitempty"`
	}
	if raw.StreamContent != "" || len(raw.StreamToolCalls) > 0 || raw.FinishReason != "" {
		o := out{FinishReason: raw.FinishReason}
		if raw.StreamContent != "" {
			o.Content = appendJSONString(nil, raw.StreamContent)
		}
		if len(raw.StreamToolCalls) > 0 {
			o.ToolCalls = validOrString(raw.StreamToolCalls)
		}
		if len(bytes.TrimSpace(raw.ResponseBody)) > 0 {
			o.Error = validOrString(raw.ResponseBody)
		}
		return m.marshalMasked(o)
	}
	body := raw.ResponseBody
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if status >= 200 && status < 300 {
		var resp struct {
			Choices []struct {
				Message struct {
					Content      json.RawMessage `json:"content"`
					Refusal      json.RawMessage `json:"refusal"`
					ToolCalls    json.RawMessage `json:"tool_calls"`
					FunctionCall json.RawMessage `json:"function_call"`
				} `json:"message"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
			Data []json.RawMessage `json:"data"`
		}
		if json.Unmarshal(body, &resp) == nil {
			switch {
			case len(resp.Choices) > 0:
				c := resp.Choices[0]
				o := out{FinishReason: c.FinishReason, ToolCalls: c.Message.ToolCalls}
				if string(c.Message.Refusal) != "null" {
					o.Refusal = c.Message.Refusal
				}
				if string(o.ToolCalls) == "null" {
					o.ToolCalls = nil
				}
				if len(o.ToolCalls) == 0 && len(c.Message.FunctionCall) > 0 && string(c.Message.FunctionCall) != "null" {
					o.ToolCalls = append(append([]byte("["), c.Message.FunctionCall...), ']')
				}
				if string(c.Message.Content) != "null" {
					o.Content = c.Message.Content
				}
				if len(resp.Choices) > 1 {
					o.Choices = len(resp.Choices)
				}
				return m.marshalMasked(o)
			case endpoint == "embeddings" || resp.Data != nil:
				b, _ := json.Marshal(struct {
					Embeddings int `json:"embeddings"`
				}{len(resp.Data)})
				return b
			}
		}
	}
	return m.JSON(body)
}

// validOrString returns b if it is valid JSON, else b as a JSON string.
func validOrString(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	return appendJSONString(nil, string(b))
}

// marshalMasked marshals v and masks every string in it.
func (m *Masker) marshalMasked(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a raw field that is not valid JSON can fail; mask the
		// value's text instead of storing it.
		return append(json.RawMessage(nil), maskingFailedJSON...)
	}
	return m.JSON(b)
}
