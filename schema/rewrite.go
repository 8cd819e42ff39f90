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
	var modelV, msgsV, soV gjson.Result
	var seen uint32
	top.ForEach(func(k, v gjson.Result) bool {
		bit := keyBit(k.Str)
		if seen&bit != 0 {
			return true // duplicates were refused by Parse; keep the first
		}
		seen |= bit
		switch bit {
		case kModel:
			modelV = v
		case kMessages:
			msgsV = v
		case kStreamOptions:
			soV = v
		}
		return true
	})

	var edits [4]edit
	n := 0
	add := func(e edit) {
		edits[n] = e
		n++
	}
	var topModel, topSO bool
	if model != "" {
		if modelV.Exists() {
			p := base + modelV.Index
			add(edit{pos: p, end: p + len(modelV.Raw), kind: editModel})
		} else {
			topModel = true
		}
	}
	if system != "" {
		if !msgsV.IsArray() {
			return dst, ErrRewriteMessages
		}
		p := base + msgsV.Index + 1
		add(edit{pos: p, end: p, kind: editSystem, comma: !isEmptyArray(msgsV.Raw)})
	}
	if forceUsage {
		switch {
		case !soV.Exists():
			topSO = true
		case !soV.IsObject():
			p := base + soV.Index
			add(edit{pos: p, end: p + len(soV.Raw), kind: editStreamOptions})
		default:
			iu := soV.Get("include_usage")
			switch {
			case iu.Type == gjson.True:
			case iu.Exists():
				p := base + iu.Index
				add(edit{pos: p, end: p + len(iu.Raw), kind: editIncludeUsage})
			default:
				p := base + soV.Index + 1
				add(edit{pos: p, end: p, kind: editIncludeUsageInsert, comma: !isEmptyObject(soV.Raw)})
			}
		}
	}
	if topModel || topSO {
		add(edit{pos: base + 1, end: base + 1, kind: editTopInsert, comma: !isEmptyObject(top.Raw)})
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
