package proxy

import (
	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/schema"
)

// refusalTable holds each route's compiled refusal phrases for one config
// (issue 16). It is built at start and on every reload and is read-only.
type refusalTable struct {
	cfg     *configs.Config
	byRoute map[*configs.Route]*schema.Refusals
}

func newRefusalTable(cfg *configs.Config) *refusalTable {
	t := &refusalTable{cfg: cfg, byRoute: make(map[*configs.Route]*schema.Refusals, len(cfg.Routes))}
	shared := schema.NewRefusals(cfg.RefusalPatterns(nil))
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		if r.Refusal != nil && len(r.Refusal.Patterns) > 0 {
			t.byRoute[r] = schema.NewRefusals(r.Refusal.Patterns)
		} else {
			t.byRoute[r] = shared
		}
	}
	return t
}

// refusals returns the phrases in force for the exchange's route.
func (g *Gateway) refusals(x *exchange) *schema.Refusals {
	if x.route == nil {
		return nil
	}
	if t := g.refusalT.Load(); t != nil {
		if r, ok := t.byRoute[x.route.Config]; ok {
			return r
		}
	}
	// A request that straddled a reload: its own config's phrases.
	return schema.NewRefusals(x.cfg.RefusalPatterns(x.route.Config))
}

// judgeMessage sets the record's refusal verdict and the system prompt a
// PII leak is checked against, for a non-streaming chat answer (streams
// are judged in finishStream).
func (g *Gateway) judgeMessage(x *exchange) {
	r := x.rec
	if x.ep != epChat && x.ep != epResponses || x.route == nil || r.Raw == nil {
		return
	}
	r.Raw.SystemPrompt = x.route.Config.Prompt.System
	if x.ep == epResponses {
		return // judged from its output items (noteResponseReply)
	}
	if r.Refusal || r.Status < 200 || r.Status >= 300 || len(r.Raw.ResponseBody) == 0 ||
		r.Raw.StreamContent != "" || len(r.Raw.StreamToolCalls) > 0 || r.Raw.FinishReason != "" {
		return
	}
	if body := r.Raw.ResponseBody; x.replyRead && sameBytes(body, x.respRaw) {
		r.Refusal = g.refusals(x).Reply(body, &x.reply)
	} else {
		r.Refusal = g.refusals(x).Message(body)
	}
}

// judgeStream sets the refusal verdict of a stream that ended.
func (g *Gateway) judgeStream(x *exchange, acc *schema.StreamAccumulator, rec *capture.Record) {
	if (x.ep == epChat || x.ep == epResponses) && acc.Err() == nil {
		rec.Refusal = g.refusals(x).Stream(acc)
	}
}

// sameBytes reports whether a and b are the same slice of the same array.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
