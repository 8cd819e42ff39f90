package schema

import (
	"errors"
)

// ErrRewriteResponses is returned by RewriteResponses for a request that
// ParseResponsesRequest did not produce.
var ErrRewriteResponses = errors.New("rewrite responses request: not parsed by ParseResponsesRequest")

// RewriteResponses appends the body r was parsed from (or a byte-identical
// copy of it) to dst with these changes and returns the extended slice:
//   - model != "": the top-level "model" is set to model;
//   - prompt != "": the route's prompt is prepended to "instructions":
//     absent or null instructions become prompt; a client's instructions C
//     become prompt + "\n\n" + C. The client's text is never dropped.
//
// Everything else is copied byte for byte.
func (r *Request) RewriteResponses(dst, body []byte, model, prompt string) ([]byte, error) {
	rf := &r.resp
	if model == "" && prompt == "" {
		return append(dst, body...), nil
	}
	if !rf.parsed || rf.base >= len(body) || body[rf.base] != '{' || rf.model[1] > len(body) || rf.instructions[1] > len(body) {
		return dst, ErrRewriteResponses
	}
	dst = growFor(dst, len(body)+len(model)+len(prompt)+32)
	type edit struct{ pos, end int }
	var edits [2]edit
	var vals [2]func([]byte) []byte
	n := 0
	insertTop := false
	if model != "" {
		if m := rf.model; m[1] > 0 {
			edits[n], vals[n] = edit{m[0], m[1]}, func(b []byte) []byte { return appendJSONString(b, model) }
			n++
		} else {
			insertTop = true
		}
	}
	var instrTop bool
	if prompt != "" {
		in := rf.instructions
		switch {
		case in[1] > 0 && rf.instrString:
			raw := b2s(body[in[0]:in[1]])
			edits[n], vals[n] = edit{in[0], in[1]}, func(b []byte) []byte {
				joined := make([]byte, 0, len(prompt)+2+len(raw))
				joined = append(joined, prompt...)
				joined = append(joined, "\n\n"...)
				joined = appendUnquote(joined, raw)
				return appendJSONString(b, b2s(joined))
			}
			n++
		case in[1] > 0: // null
			edits[n], vals[n] = edit{in[0], in[1]}, func(b []byte) []byte { return appendJSONString(b, prompt) }
			n++
		default:
			instrTop = true
		}
	}
	if n == 2 && edits[1].pos < edits[0].pos {
		edits[0], edits[1] = edits[1], edits[0]
		vals[0], vals[1] = vals[1], vals[0]
	}
	at := rf.base + 1
	dst = append(dst, body[:at]...)
	if insertTop || instrTop {
		members := 0
		if insertTop {
			dst = append(dst, `"model":`...)
			dst = appendJSONString(dst, model)
			members++
		}
		if instrTop {
			if members > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `"instructions":`...)
			dst = appendJSONString(dst, prompt)
		}
		if !rf.topEmpty {
			dst = append(dst, ',')
		}
	}
	for i := range n {
		dst = append(dst, body[at:edits[i].pos]...)
		dst = vals[i](dst)
		at = edits[i].end
	}
	return append(dst, body[at:]...), nil
}

func growFor(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	out := make([]byte, len(dst), len(dst)+n)
	copy(out, dst)
	return out
}
