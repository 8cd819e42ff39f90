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
// holds. splitGuard sits between the relay and the client for the text
// the first choice streams (its content, or the arguments of one tool
// call): it holds events back while the text sent so far ends with the
// beginning of a secret, and when the secret completes it sends the held
// events with empty text and the last one with the text joined and the
// secret replaced. At most holdMin-1 leading bytes of a secret ("sk") can
// reach the client before it is recognised.

// Paths of the streamed text in a chunk.
const (
	contentPath   = "choices.0.delta.content"
	toolArgsPath  = "choices.0.delta.tool_calls.0.function.arguments"
	toolIndexPath = "choices.0.delta.tool_calls.0.index"
)

// holdMin is how much of a secret's beginning makes the guard hold events:
// shorter beginnings ("s", "sk") are too common in text to delay on.
const holdMin = 3

// maxHeldEvents bounds the events held at once; past it they are released
// (they cannot hold a whole secret: each was checked).
const maxHeldEvents = 64

type splitGuard struct {
	s *capture.Secrets
	// field names the text being followed: "content" or "tool:<index>";
	// path is where it sits in an event.
	field, path string
	held        [][]byte // event data held back, oldest first
	pending     string   // their first-choice content, joined
	sentTail    string   // the last holdMin-1 bytes of content sent
}

// add takes one event's data and appends to out the events that may be
// sent now, in order. data may alias a buffer valid only during the call;
// what is held is copied.
func (g *splitGuard) add(out [][]byte, data []byte) [][]byte {
	field, path := "content", contentPath
	r := gjson.GetBytes(data, contentPath)
	if r.Type != gjson.String {
		field, path = "tool:"+gjson.GetBytes(data, toolIndexPath).Raw, toolArgsPath
		r = gjson.GetBytes(data, toolArgsPath)
	}
	if r.Type != gjson.String || r.Index <= 0 {
		out = g.release(out)
		return append(out, data)
	}
	if field != g.field {
		// Another text starts: what was held cannot continue into it.
		out = g.release(out)
		g.field, g.path, g.sentTail = field, path, ""
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
			out = append(out, setText(h, g.path, ""))
		}
		g.held, g.pending = g.held[:0], ""
		g.setTail(red)
		return append(out, setText(data, g.path, red[p:]))
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

// setText returns data with the string at path replaced by content.
func setText(data []byte, path, content string) []byte {
	r := gjson.GetBytes(data, path)
	if r.Type != gjson.String || r.Index <= 0 || r.Index+len(r.Raw) > len(data) {
		return data
	}
	out := make([]byte, 0, len(data)+len(content))
	out = append(out, data[:r.Index]...)
	out = jsonstr.Append(out, content)
	return append(out, data[r.Index+len(r.Raw):]...)
}
