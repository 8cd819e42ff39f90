package anthropic

import (
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/internal/jsonscan"
	"github.com/cairnhq/cairn/schema"
)

// ResponsesStream translates one Messages API event stream into typed
// Responses API events, event by event:
//
//	message_start                 → nothing yet (response.created leads the
//	                                first event that follows, so that an
//	                                error before any content may fail over)
//	content_block_start text      → response.output_item.added (message),
//	                                response.content_part.added
//	content_block_start tool_use  → response.output_item.added (function_call)
//	text_delta                    → response.output_text.delta
//	input_json_delta              → response.function_call_arguments.delta
//	content_block_stop            → response.output_text.done,
//	                                response.content_part.done,
//	                                response.output_item.done (text); or
//	                                response.function_call_arguments.done,
//	                                response.output_item.done (tool call)
//	message_delta                 → nothing (stop_reason and usage kept)
//	message_stop                  → response.completed (or response.incomplete)
//	                                with the output items and usage
//	error                         → a typed error event; before any event:
//	                                an *EventError
//	ping, thinking                → nothing
//
// A Responses stream has no [DONE]: Done is never emitted. It allocates
// nothing per event once its buffers have grown: texts and arguments are
// kept as JSON string literals (the upstream's escapes concatenate), the
// finished items as the JSON response.completed repeats. Not safe for
// concurrent use; Reset readies it for another stream.
type ResponsesStream struct {
	created   int64
	id, model []byte // JSON string literals from message_start
	u         usage
	stop      []byte
	seq       int64
	items     int    // output items opened
	itemsJSON []byte // the finished items, comma-separated
	blocks    []rsBlock
	out, idx  []byte
	done      bool
	sent      bool
}

var emptyString = []byte(`""`)

// rsBlock is one content block's output item.
type rsBlock struct {
	kind         byte // 't' text, 'f' function call, 0 other
	out          int  // output index
	callID, name []byte
	lit          []byte // the text or arguments as a JSON string literal
}

// Reset readies s for a new stream; created is the created_at it reports.
func (s *ResponsesStream) Reset(created int64) {
	s.created = created
	s.id = append(s.id[:0], `""`...)
	s.model = append(s.model[:0], `""`...)
	s.u = usage{}
	s.stop = s.stop[:0]
	s.seq, s.items = 0, 0
	s.itemsJSON = s.itemsJSON[:0]
	s.blocks = s.blocks[:0]
	s.done, s.sent = false, false
}

// Event translates one upstream event's data and calls emit for each
// Responses event it yields (Event.Data aliases the stream's buffer and
// is valid only during the call). It returns emit's first error, an
// *EventError, or ErrBadEvent.
func (s *ResponsesStream) Event(data []byte, emit func(schema.Event) error) error {
	if len(s.id) == 0 {
		s.Reset(s.created)
	}
	if s.done {
		return nil
	}
	js := b2s(data)
	if !jsonscan.Valid(js) {
		return ErrBadEvent
	}
	ev := gjson.Parse(js)
	if !ev.IsObject() {
		return ErrBadEvent
	}
	switch ev.Get("type").Str {
	case "message_start":
		m := ev.Get("message")
		if id := m.Get("id"); id.Type == gjson.String {
			s.id = append(s.id[:0], id.Raw...)
		}
		if mo := m.Get("model"); mo.Type == gjson.String {
			s.model = append(s.model[:0], mo.Raw...)
		}
		s.u.read(m.Get("usage"))
		return nil
	case "content_block_start":
		idx := int(ev.Get("index").Int())
		if idx < 0 || idx > 1<<16 {
			return ErrBadEvent
		}
		for len(s.blocks) <= idx {
			if len(s.blocks) < cap(s.blocks) {
				// Reuse a block of an earlier stream, its buffers too.
				s.blocks = s.blocks[:len(s.blocks)+1]
				s.blocks[len(s.blocks)-1].kind = 0
			} else {
				s.blocks = append(s.blocks, rsBlock{})
			}
		}
		blk := ev.Get("content_block")
		b := &s.blocks[idx]
		switch blk.Get("type").Str {
		case "text":
			if err := s.lead(emit); err != nil {
				return err
			}
			b.kind, b.out = 't', s.items
			s.items++
			b.lit = append(b.lit[:0], '"')
			s.begin("response.output_item.added", b.out)
			s.out = append(s.out, `,"item":`...)
			s.out = appendMessageItem(s.out, b2s(s.id), b2s(s.idx), "in_progress", nil)
			if err := s.end(emit); err != nil {
				return err
			}
			s.begin("response.content_part.added", b.out)
			s.itemRef(b)
			s.out = append(s.out, `,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}`...)
			if err := s.end(emit); err != nil {
				return err
			}
			if t, ok := rawField(blk.Raw, "text"); ok && len(t) > 2 && t[0] == '"' {
				return s.textDelta(emit, b, t)
			}
		case "tool_use":
			if err := s.lead(emit); err != nil {
				return err
			}
			b.kind, b.out = 'f', s.items
			s.items++
			b.callID = appendStr(b.callID[:0], blk.Get("id"))
			b.name = appendStr(b.name[:0], blk.Get("name"))
			b.lit = append(b.lit[:0], '"')
			s.begin("response.output_item.added", b.out)
			s.out = append(s.out, `,"item":`...)
			s.out = appendCallItemJSON(s.out, b2s(b.callID), b2s(b.name), "in_progress", emptyString)
			return s.end(emit)
		default:
			b.kind = 0
		}
		return nil
	case "content_block_delta":
		idx := int(ev.Get("index").Int())
		if idx < 0 || idx >= len(s.blocks) {
			return nil
		}
		b := &s.blocks[idx]
		d := ev.Get("delta")
		switch d.Get("type").Str {
		case "text_delta":
			if t, ok := rawField(d.Raw, "text"); ok && len(t) >= 2 && t[0] == '"' && b.kind == 't' {
				return s.textDelta(emit, b, t)
			}
		case "input_json_delta":
			p, ok := rawField(d.Raw, "partial_json")
			if !ok || len(p) < 2 || p[0] != '"' || b.kind != 'f' {
				return nil
			}
			b.lit = append(b.lit, p[1:len(p)-1]...)
			s.begin("response.function_call_arguments.delta", b.out)
			s.itemRef(b)
			s.out = append(s.out, `,"delta":`...)
			s.out = append(s.out, p...)
			return s.end(emit)
		}
		return nil
	case "content_block_stop":
		idx := int(ev.Get("index").Int())
		if idx < 0 || idx >= len(s.blocks) || s.blocks[idx].kind == 0 {
			return nil
		}
		return s.closeBlock(emit, &s.blocks[idx])
	case "message_delta":
		s.u.read(ev.Get("usage"))
		if st := ev.Get("delta.stop_reason"); st.Type == gjson.String {
			s.stop = append(s.stop[:0], st.Str...)
		}
		return nil
	case "message_stop":
		if err := s.lead(emit); err != nil {
			return err
		}
		for i := range s.blocks {
			if s.blocks[i].kind != 0 {
				if err := s.closeBlock(emit, &s.blocks[i]); err != nil {
					return err
				}
			}
		}
		s.done = true
		status, reason := responsesStatus(b2s(s.stop))
		typ := "response.completed"
		if status == "incomplete" {
			typ = "response.incomplete"
		}
		s.begin(typ, -1)
		s.out = append(s.out, `,"response":`...)
		s.out = appendResponseHead(s.out, b2s(s.id), b2s(s.model), s.created, status, reason)
		s.out = append(s.out, s.itemsJSON...)
		s.out = append(s.out, `],"usage":`...)
		s.out = s.u.appendResponsesJSON(s.out)
		s.out = append(s.out, '}')
		return s.end(emit)
	case "error":
		e := ev.Get("error")
		typ := e.Get("type").Str
		s.done = true
		if !s.sent {
			return &EventError{Type: typ, Message: e.Get("message").Str}
		}
		_, code := errorKind(typ, 0)
		s.begin("error", -1)
		s.out = append(s.out, `,"code":"`...)
		s.out = append(s.out, code...)
		s.out = append(s.out, `","message":`...)
		s.out = appendStr(s.out, e.Get("message"))
		s.out = append(s.out, `,"param":null`...)
		return s.end(emit)
	}
	return nil
}

// lead emits response.created once, before the stream's first other event.
func (s *ResponsesStream) lead(emit func(schema.Event) error) error {
	if s.sent {
		return nil
	}
	s.sent = true
	s.begin("response.created", -1)
	s.out = append(s.out, `,"response":`...)
	s.out = appendResponseHead(s.out, b2s(s.id), b2s(s.model), s.created, "in_progress", "")
	s.out = append(s.out, `],"usage":null}`...)
	return s.end(emit)
}

// begin starts an event of typ in s.out; out ≥ 0 adds its output_index
// (and leaves it in s.idx as text).
func (s *ResponsesStream) begin(typ string, out int) {
	s.out = append(s.out[:0], `{"type":"`...)
	s.out = append(s.out, typ...)
	s.out = append(s.out, `","sequence_number":`...)
	s.out = strconv.AppendInt(s.out, s.seq, 10)
	s.seq++
	if out >= 0 {
		s.idx = strconv.AppendInt(s.idx[:0], int64(out), 10)
		s.out = append(s.out, `,"output_index":`...)
		s.out = append(s.out, s.idx...)
	}
}

// itemRef appends the item_id of b's item (after begin set s.idx).
func (s *ResponsesStream) itemRef(b *rsBlock) {
	s.out = append(s.out, `,"item_id":`...)
	if b.kind == 'f' {
		s.out = append(s.out, `"fc_`...)
		if len(b.callID) >= 2 {
			s.out = append(s.out, b.callID[1:]...)
		} else {
			s.out = append(s.out, '"')
		}
		return
	}
	s.out = appendItemID(s.out, b2s(s.id), b2s(s.idx))
}

// end closes the event in s.out and emits it.
func (s *ResponsesStream) end(emit func(schema.Event) error) error {
	s.out = append(s.out, '}')
	return emit(schema.Event{Data: s.out})
}

// textDelta emits response.output_text.delta for raw, a JSON string literal.
func (s *ResponsesStream) textDelta(emit func(schema.Event) error, b *rsBlock, raw string) error {
	b.lit = append(b.lit, raw[1:len(raw)-1]...)
	s.begin("response.output_text.delta", b.out)
	s.itemRef(b)
	s.out = append(s.out, `,"content_index":0,"delta":`...)
	s.out = append(s.out, raw...)
	s.out = append(s.out, `,"logprobs":[]`...)
	return s.end(emit)
}

// closeBlock emits the done events of b's item and keeps the finished
// item for response.completed; b is then closed.
func (s *ResponsesStream) closeBlock(emit func(schema.Event) error, b *rsBlock) error {
	kind := b.kind
	b.kind = 0
	b.lit = append(b.lit, '"')
	if len(s.itemsJSON) > 0 {
		s.itemsJSON = append(s.itemsJSON, ',')
	}
	if kind == 'f' {
		b.kind = 'f' // for itemRef
		s.begin("response.function_call_arguments.done", b.out)
		s.itemRef(b)
		b.kind = 0
		s.out = append(s.out, `,"arguments":`...)
		s.out = append(s.out, b.lit...)
		if err := s.end(emit); err != nil {
			return err
		}
		mark := len(s.itemsJSON)
		s.itemsJSON = appendCallItemJSON(s.itemsJSON, b2s(b.callID), b2s(b.name), "completed", b.lit)
		s.begin("response.output_item.done", b.out)
		s.out = append(s.out, `,"item":`...)
		s.out = append(s.out, s.itemsJSON[mark:]...)
		return s.end(emit)
	}
	s.begin("response.output_text.done", b.out)
	s.itemRef(b)
	s.out = append(s.out, `,"content_index":0,"text":`...)
	s.out = append(s.out, b.lit...)
	s.out = append(s.out, `,"logprobs":[]`...)
	if err := s.end(emit); err != nil {
		return err
	}
	s.begin("response.content_part.done", b.out)
	s.itemRef(b)
	s.out = append(s.out, `,"content_index":0,"part":{"type":"output_text","text":`...)
	s.out = append(s.out, b.lit...)
	s.out = append(s.out, `,"annotations":[]}`...)
	if err := s.end(emit); err != nil {
		return err
	}
	mark := len(s.itemsJSON)
	s.itemsJSON = appendMessageItem(s.itemsJSON, b2s(s.id), b2s(s.idx), "completed", b.lit)
	s.begin("response.output_item.done", b.out)
	s.out = append(s.out, `,"item":`...)
	s.out = append(s.out, s.itemsJSON[mark:]...)
	return s.end(emit)
}
