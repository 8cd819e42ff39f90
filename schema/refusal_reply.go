package schema

import "github.com/cairnhq/cairn/internal/jsonscan"

// Reply judges body, the chat.completion rp was read from (or a
// byte-identical copy), as Message does, but reads only choices[0], whose
// place ReadReply already found: Message scans the whole body for its keys
// and then walks it again with gjson for the refusal field (issue 15: ~1 µs
// of every non-streaming reply). Only the opening refusalPrefixBytes of the
// content are unquoted and matched. Where rp found no choices[0], or the
// choice or its message is not a well-formed object, it falls back to
// Message, so that a body that is not plain JSON is judged as before.
//
// Unlike Message, it reads the content of choices[0].message itself and
// never the first "content" key of the body, wherever that is. body is
// only read; safe for concurrent use.
func (r *Refusals) Reply(body []byte, rp *Reply) bool {
	if rp == nil || rp.choiceEnd <= rp.choiceStart || rp.choiceEnd > len(body) || body[rp.choiceStart] != '{' {
		return r.Message(body)
	}
	ch := body[rp.choiceStart:rp.choiceEnd]
	var seen uint8 // the first of repeated keys counts, as with gjson's Get
	filter := false
	msgStart, msgEnd := -1, -1
	if jsonscan.EachMember(ch, 0, func(key []byte, vs, ve int) bool {
		switch string(key) {
		case `"finish_reason"`:
			if seen&1 == 0 {
				filter = string(ch[vs:ve]) == `"`+FinishContentFilter+`"`
			}
			seen |= 1
		case `"message"`:
			if seen&2 == 0 {
				msgStart, msgEnd = vs, ve
			}
			seen |= 2
		}
		return true
	}) < 0 {
		return r.Message(body)
	}
	if filter {
		return true
	}
	if msgStart < 0 || ch[msgStart] != '{' {
		return false // no message object: no refusal field, no content
	}
	msg := ch[msgStart:msgEnd]
	seen = 0
	refusal := false
	cs, ce := -1, -1
	if jsonscan.EachMember(msg, 0, func(key []byte, vs, ve int) bool {
		switch string(key) {
		case `"refusal"`:
			if seen&1 == 0 {
				refusal = msg[vs] == '"' && ve-vs > 2 // a non-empty string
			}
			seen |= 1
		case `"content"`:
			if seen&2 == 0 {
				cs, ce = vs, ve
			}
			seen |= 2
		}
		return true
	}) < 0 {
		return r.Message(body)
	}
	if refusal {
		return true
	}
	if r == nil || len(r.prefixes) == 0 || cs < 0 {
		return false
	}
	raw := msg[cs:ce]
	switch raw[0] {
	case '"':
	case '[': // content parts: the first text part opens the answer
		ps, pe, ok := jsonscan.FirstElement(raw, 0)
		if !ok || raw[ps] != '{' {
			return false
		}
		part := raw[ps:pe]
		ts, te := -1, -1
		jsonscan.EachMember(part, 0, func(key []byte, vs, ve int) bool {
			if string(key) == `"text"` {
				ts, te = vs, ve
				return false
			}
			return true
		})
		if ts < 0 || part[ts] != '"' {
			return false
		}
		raw = part[ts:te]
	default:
		return false
	}
	if len(raw) > refusalPrefixBytes {
		raw = raw[:refusalPrefixBytes]
	}
	var buf [refusalPrefixBytes]byte
	return r.Starts(appendUnquote(buf[:0], b2s(raw)))
}
