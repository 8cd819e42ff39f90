package proxy

import (
	"errors"
	"net/url"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/internal/jsonstr"
	"github.com/cairnhq/cairn/schema/anthropic"
)

// Provider kinds other than openai (issue 19): where a request goes, how
// its key is sent, and, for anthropic, the translation of the body both
// ways (schema/anthropic). The proxy's own logic (contracts, capture,
// limits, detection) sees only the OpenAI shape.

// initKind sets what newUpstream derives from the provider's kind: the
// key header and, for anthropic, the /v1 prefix a bare base URL lacks.
func (u *upstream) initKind(base *url.URL) {
	switch u.cfg.Kind {
	case configs.KindAzure:
		u.auth = ""
		u.keyHeader = "api-key"
	case configs.KindAnthropic:
		u.auth = ""
		u.keyHeader = "x-api-key"
		if strings.Trim(base.Path, "/") == "" {
			u.prefix = "/v1"
		}
	}
}

// kindHeaders sets the kind's own request headers.
func (u *upstream) kindHeaders(req *fasthttp.Request) {
	if u.keyHeader != "" && u.cfg.APIKey != "" {
		req.Header.Set(u.keyHeader, u.cfg.APIKey)
	}
	if u.cfg.Kind == configs.KindAnthropic {
		req.Header.Set("anthropic-version", u.cfg.AnthropicVersion)
	}
}

// path returns the request path after the base URL's prefix for ep and
// the upstream model (query included for Azure's api-version).
func (u *upstream) path(ep endpoint, model string) string {
	switch u.cfg.Kind {
	case configs.KindAzure:
		var b strings.Builder
		if u.cfg.PathStyle == configs.PathStyleV1 {
			b.WriteString("/openai/v1")
			b.WriteString(ep.path())
		} else {
			b.WriteString("/openai/deployments/")
			b.WriteString(u.cfg.Deployment(model))
			b.WriteString(ep.path())
		}
		if u.cfg.APIVersion != "" {
			b.WriteString("?api-version=")
			b.WriteString(u.cfg.APIVersion)
		}
		return b.String()
	case configs.KindAnthropic:
		return "/messages"
	}
	return ep.path()
}

// upstreamModel is the model name the body carries upstream: Azure's v1
// API takes the deployment there (the classic path ignores it).
func (u *upstream) upstreamModel(model string) string {
	if u.cfg.Kind == configs.KindAzure {
		return u.cfg.Deployment(model)
	}
	return model
}

// translateRequest turns an OpenAI request body (already rewritten for the
// target) into what the provider takes. For an anthropic provider a
// parameter that cannot be translated is a 400 naming it; chat
// completions and responses can be translated (responses_anthropic.go).
func (u *upstream) translateRequest(ep endpoint, body []byte, model string) ([]byte, *StatusError) {
	if u.cfg.Kind != configs.KindAnthropic {
		return body, nil
	}
	appendReq := anthropic.AppendRequest
	switch ep {
	case epChat:
	case epResponses:
		appendReq = anthropic.AppendResponsesRequest
	default:
		return nil, badRequest("", "provider "+u.cfg.Name+" (kind anthropic) serves only /v1/chat/completions and /v1/responses")
	}
	out, perr := appendReq(make([]byte, 0, len(body)+64), body, anthropic.RequestOptions{Model: model, MaxTokens: u.cfg.MaxTokens})
	if perr != nil {
		msg := perr.Message + " (provider " + u.cfg.Name + " is kind anthropic)"
		return nil, badRequest(perr.Param, msg)
	}
	return out, nil
}

// errNotMessage is an anthropic provider's 2xx answer that is not a
// message: a bad upstream answer, tried on the next target.
var errNotMessage = errors.New("the provider's answer is not a Messages API message")

// translateResponse rewrites a whole upstream response (status and body)
// into OpenAI's shape in place (translateRaw). It reports false for a 2xx
// anthropic body that is not a message.
func (u *upstream) translateResponse(ep endpoint, resp *fasthttp.Response, created int64) bool {
	if u.cfg.Kind == configs.KindOpenAI {
		return true
	}
	out, status, ok := u.translateRaw(ep, resp.Body(), resp.StatusCode(), created)
	if !ok {
		return false
	}
	if u.cfg.Kind == configs.KindAnthropic {
		resp.Header.SetContentType("application/json")
	}
	resp.SetStatusCode(status)
	resp.SetBodyRaw(out)
	return true
}

// translateRaw returns a whole upstream answer in OpenAI's shape: an
// anthropic message becomes a chat.completion (a Responses object for
// epResponses) and its errors OpenAI
// errors (with the status an OpenAI client expects); an Azure error
// without a type gets one. body is returned as it is when nothing needs
// translating; ok is false for a 2xx anthropic body that is not a message.
func (u *upstream) translateRaw(ep endpoint, body []byte, status int, created int64) (out []byte, st int, ok bool) {
	switch u.cfg.Kind {
	case configs.KindAnthropic:
		if status < 300 {
			appendResp := anthropic.AppendResponse
			if ep == epResponses {
				appendResp = anthropic.AppendResponsesResponse
			}
			out, err := appendResp(nil, body, created)
			return out, status, err == nil
		}
		out, st = anthropic.AppendError(nil, body, status)
		return out, st, true
	case configs.KindAzure:
		if status >= 400 {
			if out, ok := azureError(body, status); ok {
				return out, status, true
			}
		}
	}
	return body, status, true
}

// azureError rewrites an Azure OpenAI error into OpenAI's shape when it
// lacks one: Azure sends errors without a type (or with type null), and
// some with a numeric status inside; the code, param and innererror
// (where a content filter's verdict sits) are kept.
func azureError(body []byte, status int) ([]byte, bool) {
	e := gjson.GetBytes(body, "error")
	if !e.IsObject() || e.Get("type").Type == gjson.String {
		return nil, false
	}
	typ := "invalid_request_error"
	switch {
	case status == 429:
		typ = "requests"
	case status >= 500:
		typ = "server_error"
	}
	out := append(make([]byte, 0, len(body)+64), `{"error":{"message":`...)
	out = jsonstr.Append(out, e.Get("message").String())
	out = append(out, `,"type":`...)
	out = jsonstr.Append(out, typ)
	out = append(out, `,"param":`...)
	if p := e.Get("param"); p.Type == gjson.String {
		out = append(out, p.Raw...)
	} else {
		out = append(out, "null"...)
	}
	out = append(out, `,"code":`...)
	if c := e.Get("code"); c.Exists() && c.Type != gjson.Null {
		out = jsonstr.Append(out, c.String())
	} else {
		out = append(out, "null"...)
	}
	if ie := e.Get("innererror"); ie.IsObject() {
		out = append(out, `,"innererror":`...)
		out = append(out, ie.Raw...)
	}
	return append(out, "}}"...), true
}

// contentFiltered reports whether an error body is a content filter's
// refusal of the request (Azure: 400 with code content_filter). It is a
// refusal for the refusal signal, not an upstream error.
func contentFiltered(body []byte) bool {
	return gjson.GetBytes(body, "error.code").Str == "content_filter"
}
