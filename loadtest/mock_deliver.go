package loadtest

import (
	"bufio"
	"net"
	"strconv"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
)

// What the mock's OpenAI-style handlers (chat, completions, embeddings,
// responses) and its Anthropic one share: the request prologue, and the
// delivery of a planned reply as an event stream or a JSON body under the
// stream faults (SlowChunks, DisconnectAfter).

// openAIRequest reads the body and model of an OpenAI-style request,
// captures it, and checks the key and the model; ok false means the error
// is written and the handler must return.
func (m *Mock) openAIRequest(ctx *fasthttp.RequestCtx) (body []byte, model string, ok bool) {
	body = ctx.PostBody()
	model = gjson.GetBytes(body, "model").Str
	m.capture(ctx, model)
	if !m.authorized(ctx) {
		return nil, "", false
	}
	if _, ok := requestModel(ctx); !ok {
		return nil, "", false
	}
	return body, model, true
}

// eventSource writes the events of one planned reply paced by plan, each
// through emit, and stops at emit's first error.
type eventSource func(plan streamPlan, emit func(ev []byte) error)

// serveStream sends events as a stream of contentType. Under a disconnect
// fault it writes the chunked response itself on the hijacked connection
// and cuts it after f.DisconnectAfter events; SlowChunks paces the chunks.
func (m *Mock) serveStream(ctx *fasthttp.RequestCtx, f Fault, reqID, contentType string, events eventSource) {
	plan := streamPlan{latency: m.opts.Latency, interval: m.opts.ChunkInterval, chunks: m.opts.Chunks}
	if f.SlowChunks > 0 {
		plan.interval = f.SlowChunks
	}
	if f.disconnects() {
		limit := f.DisconnectAfter
		m.hijack(ctx, func(c net.Conn) {
			if rawHead(c, "text/event-stream", reqID, -1) != nil || limit == 0 {
				return
			}
			n := 0
			var hdr []byte
			events(plan, func(ev []byte) error {
				if n >= limit {
					return errStreamCut
				}
				n++
				hdr = strconv.AppendInt(hdr[:0], int64(len(ev)), 16)
				hdr = append(hdr, "\r\n"...)
				_, err := c.Write(append(append(hdr, ev...), "\r\n"...))
				return err
			})
		})
		return
	}
	ctx.Response.Header.SetContentType(contentType)
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		events(plan, func(ev []byte) error {
			if _, err := w.Write(ev); err != nil {
				return err
			}
			return w.Flush()
		})
	})
}

// serveJSON sends out as the JSON reply, or under a disconnect fault only
// its head before the connection is cut. The caller has waited the latency
// and set openai-processing-ms.
func (m *Mock) serveJSON(ctx *fasthttp.RequestCtx, f Fault, reqID string, out []byte) {
	if f.disconnects() {
		m.hijack(ctx, func(c net.Conn) { rawHead(c, "application/json", reqID, len(out)) })
		return
	}
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetBody(out)
}
