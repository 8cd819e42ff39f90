package proxy

import (
	"bytes"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/internal/jsonstr"
)

// Issue 12.4: an upstream can send a secret in content cut across two
// chunk events ("sk-proj-LE" then "AK/0123…"), which no single event
// holds. splitGuard sits between the relay and the client for the content
// of the first choice: it holds events back while the content sent so far
// ends with the beginning of a secret, and when the secret completes it
// sends the held events with empty content and the last one with the
// content joined and the secret replaced. At most holdMin-1 leading bytes
// of a secret ("sk") can reach the client before it is recognised.

// holdMin is how much of a secret's beginning makes the guard hold events:
// shorter beginnings ("s", "sk") are too common in text to delay on.
const holdMin = 3

// maxHeldEvents bounds the events held at once; past it they are released
// (they cannot hold a whole secret: each was checked).
const maxHeldEvents = 64

type splitGuard struct {
	s        *capture.Secrets
	held     [][]byte // event data held back, oldest first
	pending  string   // their first-choice content, joined
	sentTail string   // the last holdMin-1 bytes of content sent
}

// add takes one event's data and appends to out the events that may be
// sent now, in order. data may alias a buffer valid only during the call;
// what is held is copied.
func (g *splitGuard) add(out [][]byte, data []byte) [][]byte {
	r := gjson.GetBytes(data, "choices.0.delta.content")
	if r.Type != gjson.String || r.Index <= 0 {
		out = g.release(out)
		return append(out, data)
	}
	window := g.sentTail + g.pending + r.Str
	switch {
	case g.s.ContainsString(window):
		red := g.s.String(window)
		// The client already has sentTail; a secret that began inside it
		// is sent from its placeholder on.
		p := 0
		for p < len(g.sentTail) && p < len(red) && red[p] == g.sentTail[p] {
			p++
		}
		for _, h := range g.held {
			out = append(out, setContent(h, ""))
		}
		g.held, g.pending = g.held[:0], ""
		g.setTail(red)
		return append(out, setContent(data, red[p:]))
	case len(g.held) < maxHeldEvents && g.s.EndsWithPrefix(window, holdMin):
		g.held = append(g.held, bytes.Clone(data)) // data aliases the parser's buffer
		g.pending += r.Str
		return out
	}
	out = g.release(out)
	g.setTail(window)
	return append(out, data)
}

// release appends the held events unchanged (none holds a whole secret).
func (g *splitGuard) release(out [][]byte) [][]byte {
	out = append(out, g.held...)
	if len(g.held) > 0 {
		g.setTail(g.sentTail + g.pending)
	}
	g.held, g.pending = g.held[:0], ""
	return out
}

func (g *splitGuard) setTail(sent string) {
	if len(sent) >= holdMin-1 {
		sent = sent[len(sent)-(holdMin-1):]
	}
	g.sentTail = strings.Clone(sent)
}

// setContent returns data with its first choice's delta.content replaced
// by content.
func setContent(data []byte, content string) []byte {
	r := gjson.GetBytes(data, "choices.0.delta.content")
	if r.Type != gjson.String || r.Index <= 0 || r.Index+len(r.Raw) > len(data) {
		return data
	}
	out := make([]byte, 0, len(data)+len(content))
	out = append(out, data[:r.Index]...)
	out = jsonstr.Append(out, content)
	return append(out, data[r.Index+len(r.Raw):]...)
}
