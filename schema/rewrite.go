package schema

import (
	"errors"
	"slices"

	"github.com/tidwall/gjson"
)

// Errors from RewriteRequest. The proxy parses every body before rewriting
// it, so seeing one means a caller skipped that step.
var (
	ErrRewriteNotObject = errors.New("rewrite request: body is not a JSON object")
	ErrRewriteMessages  = errors.New("rewrite request: no messages array to inject the system prompt into")
)

type editKind uint8

const (
	editTopInsert          editKind = iota // members after the top-level '{'
	editModel                              // replace the model value
	editSystem                             // system message after messages' '['
	editStreamOptions                      // replace a non-object stream_options
	editIncludeUsage                       // replace include_usage's value
	editIncludeUsageInsert                 // member after stream_options' '{'
)

type edit struct {
	pos, end int // body[pos:end] is replaced
	kind     editKind
	comma    bool // inserted member or element is followed by a comma
}

// RewriteRequest appends body to dst with these changes and returns the
// extended slice:
//   - model != "": the top-level "model" is set to model;
//   - system != "": {"role":"system","content":system} is inserted as the
//     first element of "messages", before any system message the client sent;
//   - forceUsage: "stream_options" gets "include_usage": true (added when
//     absent), so the upstream reports usage at the end of a stream.
//
// Everything else is copied byte for byte. body must have passed
// ParseChatRequest (or ParseEmbeddingsRequest, without system). The cost is
// one gjson pass over the top-level object and one copy; dst is grown once.
func RewriteRequest(dst, body []byte, model, system string, forceUsage bool) ([]byte, error) {
	if model == "" && system == "" && !forceUsage {
		return append(dst, body...), nil
	}
	top, base := parseTop(body)
	if !top.IsObject() {
		return dst, ErrRewriteNotObject
	}
	sp := topSpans{ok: true, base: base, topEmpty: isEmptyObject(top.Raw)}
	var seen uint32
	top.ForEach(func(k, v gjson.Result) bool {
		bit := keyBit(k.Str)
		if seen&bit != 0 {
			return true // duplicates were refused by Parse; keep the first
		}
		seen |= bit
		sp.note(bit, base+v.Index, len(v.Raw))
		return true
	})
	return applyRewrite(dst, body, &sp, model, system, forceUsage)
}

// topSpans are where the top-level members a rewrite edits are in a body:
// value spans [start, end) as offsets, end 0 when the member is absent.
// ParseChatRequest records them so that Request.Rewrite does not parse the
// body's top level again (issue 15).
type topSpans struct {
	ok       bool
	base     int  // the top-level '{'
	topEmpty bool // the object is {}
	model    [2]int
	messages [2]int
	streamOp [2]int // stream_options
}

// note records the value of a top-level member with key bit at off, n
// bytes long.
func (sp *topSpans) note(bit uint32, off, n int) {
	switch bit {
	case kModel:
		sp.model = [2]int{off, off + n}
	case kMessages:
		sp.messages = [2]int{off, off + n}
	case kStreamOptions:
		sp.streamOp = [2]int{off, off + n}
	}
}

// Rewrite is RewriteRequest(dst, body, model, system, forceUsage) for the
// body r was parsed from, or a byte-identical copy of it (see Rebase),
// using where ParseChatRequest found model, messages and stream_options
// instead of parsing the body again.
func (r *Request) Rewrite(dst, body []byte, model, system string, forceUsage bool) ([]byte, error) {
	if model == "" && system == "" && !forceUsage {
		return append(dst, body...), nil
	}
	sp := &r.spans
	if !sp.ok || sp.base >= len(body) || body[sp.base] != '{' || sp.model[1] > len(body) || sp.messages[1] > len(body) || sp.streamOp[1] > len(body) {
		return RewriteRequest(dst, body, model, system, forceUsage)
	}
	return applyRewrite(dst, body, sp, model, system, forceUsage)
}

// applyRewrite makes RewriteRequest's edits at the spans sp found in body.
func applyRewrite(dst, body []byte, sp *topSpans, model, system string, forceUsage bool) ([]byte, error) {
	base := sp.base
	var edits [4]edit
	n := 0
	add := func(e edit) {
		edits[n] = e
		n++
	}
	var topModel, topSO bool
	if model != "" {
		if m := sp.model; m[1] > 0 {
			add(edit{pos: m[0], end: m[1], kind: editModel})
		} else {
			topModel = true
		}
	}
	if system != "" {
		m := sp.messages
		if m[1] == 0 || body[m[0]] != '[' {
			return dst, ErrRewriteMessages
		}
		add(edit{pos: m[0] + 1, end: m[0] + 1, kind: editSystem, comma: !isEmptyArray(b2s(body[m[0]:m[1]]))})
	}
	if forceUsage {
		so := sp.streamOp
		switch {
		case so[1] == 0:
			topSO = true
		case body[so[0]] != '{':
			add(edit{pos: so[0], end: so[1], kind: editStreamOptions})
		default:
			raw := b2s(body[so[0]:so[1]])
			iu := gjson.Get(raw, "include_usage")
			switch {
			case iu.Type == gjson.True:
			case iu.Exists():
				p := so[0] + iu.Index
				add(edit{pos: p, end: p + len(iu.Raw), kind: editIncludeUsage})
			default:
				add(edit{pos: so[0] + 1, end: so[0] + 1, kind: editIncludeUsageInsert, comma: !isEmptyObject(raw)})
			}
		}
	}
	if topModel || topSO {
		add(edit{pos: base + 1, end: base + 1, kind: editTopInsert, comma: !sp.topEmpty})
	}
	es := edits[:n]
	slices.SortFunc(es, func(a, b edit) int { return a.pos - b.pos })

	dst = slices.Grow(dst, len(body)+len(model)+len(system)+96)
	last := 0
	for _, e := range es {
		if e.pos < last || e.end > len(body) {
			return dst, errors.New("rewrite request: BUG: overlapping edits")
		}
		dst = append(dst, body[last:e.pos]...)
		switch e.kind {
		case editTopInsert:
			if topModel {
				dst = append(dst, `"model":`...)
				dst = appendJSONString(dst, model)
				if topSO {
					dst = append(dst, ',')
				}
			}
			if topSO {
				dst = append(dst, `"stream_options":{"include_usage":true}`...)
			}
		case editModel:
			dst = appendJSONString(dst, model)
		case editSystem:
			dst = append(dst, `{"role":"system","content":`...)
			dst = appendJSONString(dst, system)
			dst = append(dst, '}')
		case editStreamOptions:
			dst = append(dst, `{"include_usage":true}`...)
		case editIncludeUsage:
			dst = append(dst, "true"...)
		case editIncludeUsageInsert:
			dst = append(dst, `"include_usage":true`...)
		}
		if e.comma {
			dst = append(dst, ',')
		}
		last = e.end
	}
	return append(dst, body[last:]...), nil
}

func isEmptyObject(raw string) bool {
	for i := 1; i < len(raw); i++ {
		if !isSpace(raw[i]) {
			return raw[i] == '}'
		}
	}
	return true
}
