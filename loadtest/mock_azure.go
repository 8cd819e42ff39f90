package loadtest

import (
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
)

// The mock's Azure OpenAI API (issue 19): the classic
// /openai/deployments/{deployment}/chat/completions?api-version=… path
// (the deployment stands for the model, whatever the body says) and the
// v1 path /openai/v1/chat/completions, the key in the api-key header, the
// request ID in apim-request-id, and errors in Azure's shape (no type).
// A fault with Status 400 and ErrorCode "content_filter" answers as
// Azure's content filter does when it refuses a prompt.

// AzureContentFilterMessage is the message of the mock's content-filter
// refusal.
const AzureContentFilterMessage = "The response was filtered due to the prompt triggering Azure OpenAI's content management policy."

// serveAzure serves the Azure OpenAI paths (after /openai).
func (m *Mock) serveAzure(ctx *fasthttp.RequestCtx, start time.Time, seq int64, path string) {
	reqID := string(ctx.Response.Header.Peek("x-request-id"))
	ctx.Response.Header.Del("x-request-id")
	ctx.Response.Header.Set("apim-request-id", reqID)
	var deployment string
	switch {
	case path == "/v1/chat/completions":
	case strings.HasPrefix(path, "/deployments/") && strings.HasSuffix(path, "/chat/completions"):
		deployment = strings.TrimSuffix(strings.TrimPrefix(path, "/deployments/"), "/chat/completions")
		if deployment == "" || strings.Contains(deployment, "/") {
			m.capture(ctx, "")
			writeAzureError(ctx, fasthttp.StatusNotFound, "404", "Resource not found", "")
			return
		}
		if len(ctx.QueryArgs().Peek("api-version")) == 0 {
			m.capture(ctx, deployment)
			writeAzureError(ctx, fasthttp.StatusNotFound, "404", "Resource not found", "")
			return
		}
	default:
		m.capture(ctx, "")
		writeAzureError(ctx, fasthttp.StatusNotFound, "404", "Resource not found", "")
		return
	}
	if m.opts.APIKey != "" {
		if string(ctx.Request.Header.Peek("api-key")) != m.opts.APIKey {
			m.capture(ctx, deployment)
			writeAzureError(ctx, fasthttp.StatusUnauthorized, "401", "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.", "")
			return
		}
	}
	if deployment != "" {
		// The classic path names the model by its deployment.
		if b, err := sjsonSetModel(ctx.PostBody(), deployment); err == nil {
			ctx.Request.SetBodyRaw(b)
		}
	}
	m.serveChat(ctx, start, seq)
	status := ctx.Response.StatusCode()
	if status < 400 || ctx.Response.IsBodyStream() {
		return
	}
	// Azure's errors carry no type; its content filter names its verdict.
	e := gjson.GetBytes(ctx.Response.Body(), "error")
	code := e.Get("code").Str
	if code == "" {
		code = e.Get("type").Str
	}
	inner := ""
	if status == fasthttp.StatusBadRequest && code == "content_filter" {
		inner = `{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}}`
		writeAzureError(ctx, status, code, AzureContentFilterMessage, inner)
		return
	}
	writeAzureError(ctx, status, code, e.Get("message").Str, "")
}

// sjsonSetModel returns body with its top-level "model" set to model.
func sjsonSetModel(body []byte, model string) ([]byte, error) {
	m := gjson.GetBytes(body, "model")
	if !m.Exists() || m.Index <= 0 {
		return body, nil
	}
	out := make([]byte, 0, len(body)+len(model))
	out = append(out, body[:m.Index]...)
	out = appendJSONString(out, model)
	return append(out, body[m.Index+len(m.Raw):]...), nil
}

// writeAzureError writes Azure's error shape: {"error":{"code","message"}}
// with, for the content filter, param "prompt", status and innererror.
func writeAzureError(ctx *fasthttp.RequestCtx, status int, code, msg, inner string) {
	b := append([]byte(nil), `{"error":{"code":`...)
	b = appendJSONString(b, code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, msg)
	if inner != "" {
		b = append(b, `,"param":"prompt","type":null,"status":400,"innererror":`...)
		b = append(b, inner...)
	}
	b = append(b, "}}"...)
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetStatusCode(status)
	ctx.SetBody(b)
}
