package anthropic

import (
	"errors"
	"strconv"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/internal/jsonscan"
	"github.com/cairnhq/cairn/schema"
)

// ErrBadEvent is returned by Stream.Event for an event whose data is not
// a JSON object: the stream cannot be translated past it.
var ErrBadEvent = errors.New("anthropic: stream event is not a JSON object")

// Stream translates one Messages API event stream into chat.completion.chunk
// events, event by event:
//
//	message_start                      → a chunk with the assistant role, sent
//	                                     before the first chunk that follows
//	content_block_start (tool_use)     → a chunk opening tool_calls[k] (id, name, "")
//	content_block_delta text_delta     → a chunk with delta.content
//	content_block_delta input_json_delta → a chunk with tool_calls[k].function.arguments
//	message_delta                      → a chunk with finish_reason
//	message_stop                       → the usage chunk (when asked for), then [DONE]
//	error                              → an OpenAI error event, then [DONE];
//	                                     before any chunk: an *EventError
//	ping, content_block_stop, thinking → nothing
//
// It allocates nothing per event once its buffers have grown to the
// stream's largest event: chunks are built in a buffer the Stream owns,
// and what the chunk repeats (id, model) is copied once. A Stream is not
// safe for concurrent use; Reset readies it for another stream.
type Stream struct {
	created      int64
	includeUsage bool
	id, model    []byte // JSON string literals from message_start
	blockTool    []int  // content block index → tool call index, -1 for others
	tools        int
	u            usage
	out          []byte
	done         bool
	sent         bool // a chunk was emitted (the role chunk leads)
}

// EventError is an error event that arrived before the stream produced a
// chunk: nothing reached the client, so the gateway may still try another
// target, as it would after a 5xx status (Anthropic reports overload
// this way, inside a 200 stream).
type EventError struct {
	Type, Message string
}

func (e *EventError) Error() string {
	return "anthropic stream error before any content: " + e.Type + ": " + e.Message
}

// Reset readies s for a new stream. created is the Unix time the chunks
// carry; includeUsage asks for the final usage chunk (choices: []).
func (s *Stream) Reset(created int64, includeUsage bool) {
	s.created, s.includeUsage = created, includeUsage
	s.id = append(s.id[:0], `""`...)
	s.model = append(s.model[:0], `""`...)
	s.blockTool = s.blockTool[:0]
	s.tools = 0
	s.u = usage{}
	s.done = false
	s.sent = false
}

// Usage reports the stream's usage so far in OpenAI terms.
func (s *Stream) Usage() (prompt, completion, cached int64) {
	return s.u.input + s.u.cacheRead + s.u.cacheWrite, s.u.output, s.u.cacheRead
}

// b2s aliases b as a string without copying. The string must not outlive
// b nor be kept: every use below reads it during Event and copies what it
// keeps.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// Event translates one upstream event's data and calls emit for each
// chat completions event it yields (Event.Data aliases the Stream's
// buffer and is valid only during the call; Done marks the end). It
// returns emit's first error, or ErrBadEvent.
func (s *Stream) Event(data []byte, emit func(schema.Event) error) error {
	if len(s.id) == 0 {
		s.Reset(s.created, s.includeUsage)
	}
	if s.done {
		return nil // nothing follows the end
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
		return nil // the role chunk leads the first chunk (lead)
	case "content_block_start":
		b := ev.Get("content_block")
		idx := int(ev.Get("index").Int())
		switch b.Get("type").Str {
		case "tool_use":
			if idx < 0 || idx > 1<<16 {
				return ErrBadEvent
			}
			for len(s.blockTool) <= idx {
				s.blockTool = append(s.blockTool, -1)
			}
			if err := s.lead(emit); err != nil {
				return err
			}
			k := s.tools
			s.blockTool[idx] = k
			s.tools++
			s.head()
			s.out = append(s.out, `{"tool_calls":[{"index":`...)
			s.out = strconv.AppendInt(s.out, int64(k), 10)
			s.out = append(s.out, `,"id":`...)
			s.out = appendStr(s.out, b.Get("id"))
			s.out = append(s.out, `,"type":"function","function":{"name":`...)
			s.out = appendStr(s.out, b.Get("name"))
			s.out = append(s.out, `,"arguments":""}}]}`...)
			return s.tail(emit, "")
		case "text":
			if t, ok := rawField(b.Raw, "text"); ok && len(t) > 2 && t[0] == '"' {
				return s.content(emit, t)
			}
		}
		return nil
	case "content_block_delta":
		d := ev.Get("delta")
		switch d.Get("type").Str {
		case "text_delta":
			if t, ok := rawField(d.Raw, "text"); ok && len(t) >= 2 && t[0] == '"' {
				return s.content(emit, t)
			}
		case "input_json_delta":
			idx := int(ev.Get("index").Int())
			p, ok := rawField(d.Raw, "partial_json")
			if !ok || len(p) < 2 || p[0] != '"' || idx < 0 || idx >= len(s.blockTool) || s.blockTool[idx] < 0 {
				return nil
			}
			if err := s.lead(emit); err != nil {
				return err
			}
			s.head()
			s.out = append(s.out, `{"tool_calls":[{"index":`...)
			s.out = strconv.AppendInt(s.out, int64(s.blockTool[idx]), 10)
			s.out = append(s.out, `,"function":{"arguments":`...)
			s.out = append(s.out, p...)
			s.out = append(s.out, `}}]}`...)
			return s.tail(emit, "")
		}
		return nil
	case "message_delta":
		s.u.read(ev.Get("usage"))
		stop := ev.Get("delta.stop_reason")
		if stop.Type != gjson.String {
			return nil
		}
		return s.chunk(emit, `{}`, FinishReason(stop.Str))
	case "message_stop":
		if err := s.lead(emit); err != nil {
			return err
		}
		s.done = true
		if s.includeUsage {
			s.out = append(s.out[:0], `{"id":`...)
			s.out = append(s.out, s.id...)
			s.out = append(s.out, `,"object":"chat.completion.chunk","created":`...)
			s.out = strconv.AppendInt(s.out, s.created, 10)
			s.out = append(s.out, `,"model":`...)
			s.out = append(s.out, s.model...)
			s.out = append(s.out, `,"choices":[],"usage":`...)
			s.out = s.u.appendJSON(s.out)
			s.out = append(s.out, '}')
			if err := emit(schema.Event{Data: s.out}); err != nil {
				return err
			}
		}
		return emit(schema.Event{Done: true})
	case "error":
		e := ev.Get("error")
		typ := e.Get("type").Str
		if !s.sent {
			s.done = true
			return &EventError{Type: typ, Message: e.Get("message").Str}
		}
		oaType, code := errorKind(typ, 0)
		s.out = append(s.out[:0], `{"error":{"message":`...)
		s.out = appendStr(s.out, e.Get("message"))
		s.out = append(s.out, `,"type":"`...)
		s.out = append(s.out, oaType...)
		s.out = append(s.out, `","param":null,"code":"`...)
		s.out = append(s.out, code...)
		s.out = append(s.out, `"}}`...)
		s.done = true
		if err := emit(schema.Event{Data: s.out}); err != nil {
			return err
		}
		return emit(schema.Event{Done: true})
	}
	return nil // ping, content_block_stop, thinking deltas, future event types
}

// appendStr appends v's JSON literal when it is a string, else "".
func appendStr(dst []byte, v gjson.Result) []byte {
	if v.Type != gjson.String {
		return append(dst, `""`...)
	}
	return append(dst, v.Raw...)
}

// lead emits the role chunk once, before the stream's first other chunk.
func (s *Stream) lead(emit func(schema.Event) error) error {
	if s.sent {
		return nil
	}
	s.sent = true
	s.head()
	s.out = append(s.out, `{"role":"assistant","content":""}`...)
	return s.tail(emit, "")
}

// head starts a chunk in s.out up to its delta.
func (s *Stream) head() {
	s.out = append(s.out[:0], `{"id":`...)
	s.out = append(s.out, s.id...)
	s.out = append(s.out, `,"object":"chat.completion.chunk","created":`...)
	s.out = strconv.AppendInt(s.out, s.created, 10)
	s.out = append(s.out, `,"model":`...)
	s.out = append(s.out, s.model...)
	s.out = append(s.out, `,"choices":[{"index":0,"delta":`...)
}

// tail ends the chunk after its delta and emits it.
func (s *Stream) tail(emit func(schema.Event) error, finish string) error {
	s.out = append(s.out, `,"logprobs":null,"finish_reason":`...)
	if finish == "" {
		s.out = append(s.out, "null"...)
	} else {
		s.out = append(s.out, '"')
		s.out = append(s.out, finish...)
		s.out = append(s.out, '"')
	}
	s.out = append(s.out, "}]}"...)
	return emit(schema.Event{Data: s.out})
}

// chunk emits a chunk with the raw delta and finish_reason ("" is null).
func (s *Stream) chunk(emit func(schema.Event) error, delta, finish string) error {
	if err := s.lead(emit); err != nil {
		return err
	}
	s.head()
	s.out = append(s.out, delta...)
	return s.tail(emit, finish)
}

// content emits a chunk whose delta.content is raw, a JSON string literal.
func (s *Stream) content(emit func(schema.Event) error, raw string) error {
	if err := s.lead(emit); err != nil {
		return err
	}
	s.head()
	s.out = append(s.out, `{"content":`...)
	s.out = append(s.out, raw...)
	s.out = append(s.out, '}')
	return s.tail(emit, "")
}
