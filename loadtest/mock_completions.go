package loadtest

import (
	"bufio"
	"strconv"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
)

// mockCompletionText is the legacy completion the mock answers with.
const mockCompletionText = "This is a completion from the Cairn mock provider."

// serveCompletions answers POST /v1/completions (the legacy text
// completions the gateway passes through, issue 14.5) with a
// text_completion object, or an SSE stream of them ending in [DONE], with
// usage; the model's status faults, delays and hangs apply as for chat.
func (m *Mock) serveCompletions(ctx *fasthttp.RequestCtx, start time.Time, seq int64) {
	body, model, ok := m.openAIRequest(ctx)
	if !ok {
		return
	}
	res := gjson.GetManyBytes(body, "prompt", "stream", "stream_options.include_usage")
	prompt, stream, withUsage := res[0], res[1].Bool(), res[2].Bool()
	if prompt.Type != gjson.String && !prompt.IsArray() {
		writeMockError(ctx, fasthttp.StatusBadRequest, "you must provide a prompt parameter", "invalid_request_error", "")
		return
	}
	if _, handled := m.preludeFault(ctx, model, nil, start); handled {
		return
	}
	if !m.sleep(m.opts.Latency) {
		writeMockError(ctx, fasthttp.StatusServiceUnavailable, "mock provider is shutting down", "server_error", "")
		return
	}
	id := "cmpl-" + m.opts.RequestIDPrefix + strconv.FormatInt(seq, 10)
	promptTok, complTok := approxTokens(len(prompt.Raw)), approxTokens(len(mockCompletionText))
	setProcessingMS(ctx, start)
	if !stream {
		b := appendCompletionEvent(nil, id, model, mockCompletionText, `"stop"`)
		b = append(b[:len(b)-1], `,"usage":`...)
		b = appendUsage(b, promptTok, complTok)
		ctx.Response.Header.SetContentType("application/json")
		ctx.SetBody(append(b, '}'))
		return
	}
	ctx.Response.Header.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	pieces := splitPieces(mockCompletionText, m.opts.Chunks)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		send := func(data []byte) bool {
			_, _ = w.WriteString("data: ")
			_, _ = w.Write(data)
			_, _ = w.WriteString("\n\n")
			return w.Flush() == nil
		}
		for i, p := range pieces {
			if i > 0 && !m.sleep(m.opts.ChunkInterval) {
				return
			}
			if !send(appendCompletionEvent(nil, id, model, p, "null")) {
				return
			}
		}
		if !send(appendCompletionEvent(nil, id, model, "", `"stop"`)) {
			return
		}
		if withUsage {
			b := append(appendCompletionHead(nil, id, model), `[],"usage":`...)
			if !send(append(appendUsage(b, promptTok, complTok), '}')) {
				return
			}
		}
		send([]byte("[DONE]"))
	})
}

func appendCompletionHead(b []byte, id, model string) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"object":"text_completion","created":`...)
	b = strconv.AppendInt(b, time.Now().Unix(), 10)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, model)
	return append(b, `,"choices":`...)
}

// appendCompletionEvent appends a text_completion with one choice; finish
// is raw JSON ("null" or a quoted reason).
func appendCompletionEvent(b []byte, id, model, text, finish string) []byte {
	b = appendCompletionHead(b, id, model)
	b = append(b, `[{"text":`...)
	b = appendJSONString(b, text)
	b = append(b, `,"index":0,"logprobs":null,"finish_reason":`...)
	b = append(b, finish...)
	return append(b, "}]}"...)
}
