package schema

import (
	"bytes"
	"errors"
)

// DefaultMaxEventSize bounds one SSE event (its data plus the line being
// assembled) when SSEParser.MaxEventSize is zero.
const DefaultMaxEventSize = 4 << 20

// ErrEventTooLarge is returned by SSEParser when an event or a line grows
// past the parser's MaxEventSize. The stream cannot be framed after it; the
// parser keeps returning it until Reset.
var ErrEventTooLarge = errors.New("sse: event larger than the limit")

// Event is one Server-Sent Event's data.
type Event struct {
	// Data is the event's data lines joined with "\n". It aliases the
	// parser's buffer and is valid only during the callback; copy it to keep
	// it.
	Data []byte
	// Done reports the OpenAI end-of-stream sentinel "data: [DONE]".
	Done bool
}

// SSEParser frames a text/event-stream body incrementally, as the
// WHATWG EventSource spec does: lines end with CRLF, LF or CR (also when a
// CRLF is split between two reads); a blank line dispatches the event; data
// lines are joined with "\n"; lines starting with ":" are comments; fields
// other than "data" (event, id, retry) are ignored; a leading UTF-8 BOM is
// skipped. An event is delivered the same way wherever the reads split it.
// Unlike a browser, Flush delivers an event that the stream ended before its
// blank line.
//
// The zero value is ready to use. An SSEParser is not safe for concurrent
// use; its buffers are reused across events and after Reset.
type SSEParser struct {
	// MaxEventSize bounds an event's data and any one line, in bytes. 0:
	// DefaultMaxEventSize.
	MaxEventSize int

	line    []byte // a line split across Feed calls
	data    []byte // the data of the event being assembled
	lines   int    // data lines in data
	afterCR bool   // the last byte fed was CR: a leading LF is part of that break
	started bool   // the first line has been seen (BOM handled)
	err     error  // sticky ErrEventTooLarge
}

func (p *SSEParser) max() int {
	if p.MaxEventSize > 0 {
		return p.MaxEventSize
	}
	return DefaultMaxEventSize
}

// Feed parses the next bytes of the stream and calls fn for every event
// they complete, in order. It returns the first error fn returns (the rest
// of b is then not parsed) or ErrEventTooLarge. b is not retained.
func (p *SSEParser) Feed(b []byte, fn func(Event) error) error {
	if p.err != nil {
		return p.err
	}
	for len(b) > 0 {
		if p.afterCR {
			p.afterCR = false
			if b[0] == '\n' {
				b = b[1:]
				continue
			}
		}
		i := lineEnd(b)
		if i < 0 {
			if len(p.line)+len(b) > p.max() {
				return p.fail()
			}
			p.line = append(p.line, b...)
			return nil
		}
		if len(p.line)+i > p.max() {
			return p.fail()
		}
		line := b[:i]
		if len(p.line) > 0 {
			p.line = append(p.line, line...)
			line = p.line
		}
		if b[i] == '\r' {
			if i+1 < len(b) {
				if b[i+1] == '\n' {
					i++
				}
			} else {
				p.afterCR = true
			}
		}
		b = b[i+1:]
		err := p.processLine(line, fn)
		p.line = p.line[:0]
		if err != nil {
			return err
		}
	}
	return nil
}

// Flush ends the stream: a last line without its line break and an event
// without its blank line are delivered to fn. The parser is then ready for
// a new stream.
func (p *SSEParser) Flush(fn func(Event) error) error {
	if p.err != nil {
		return p.err
	}
	var err error
	if len(p.line) > 0 {
		err = p.processLine(p.line, fn)
	}
	if err == nil {
		err = p.dispatch(fn)
	}
	p.clear()
	return err
}

// Reset discards any partial line and event and clears an error, keeping
// small buffers for reuse.
func (p *SSEParser) Reset() {
	p.clear()
	p.err = nil
	if cap(p.data) > 64<<10 {
		p.data = nil
	}
	if cap(p.line) > 64<<10 {
		p.line = nil
	}
}

func (p *SSEParser) clear() {
	p.line = p.line[:0]
	p.data = p.data[:0]
	p.lines = 0
	p.afterCR = false
	p.started = false
}

func (p *SSEParser) fail() error {
	p.err = ErrEventTooLarge
	return p.err
}

// lineEnd returns the index of the first CR or LF in b, or -1.
func lineEnd(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	lim := b
	if i >= 0 {
		lim = b[:i]
	}
	if j := bytes.IndexByte(lim, '\r'); j >= 0 {
		return j
	}
	return i
}

var bom = []byte("\xEF\xBB\xBF")

func (p *SSEParser) processLine(line []byte, fn func(Event) error) error {
	if !p.started {
		p.started = true
		line = bytes.TrimPrefix(line, bom)
	}
	if len(line) == 0 {
		return p.dispatch(fn)
	}
	if line[0] == ':' {
		return nil // comment
	}
	field, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		field, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	if string(field) != "data" {
		return nil
	}
	if len(p.data)+len(value)+1 > p.max() {
		return p.fail()
	}
	if p.lines > 0 {
		p.data = append(p.data, '\n')
	}
	p.data = append(p.data, value...)
	p.lines++
	return nil
}

var doneSentinel = []byte("[DONE]")

func (p *SSEParser) dispatch(fn func(Event) error) error {
	if p.lines == 0 {
		return nil
	}
	ev := Event{Data: p.data, Done: bytes.Equal(trimSpace(p.data), doneSentinel)}
	p.data = p.data[:0]
	p.lines = 0
	return fn(ev)
}

// AppendSSEEvent appends data framed as one SSE event and returns the
// extended slice: every line of data (split at LF, CR or CRLF) becomes its
// own "data: " line, and a blank line ends the event. An SSEParser reads
// the event back with the same data (line breaks normalised to LF). Use it
// to relay an Event: writing "data: "+Data+"\n\n" would break an event
// whose data has several lines.
func AppendSSEEvent(dst, data []byte) []byte {
	for {
		dst = append(dst, "data: "...)
		i := lineEnd(data)
		if i < 0 {
			dst = append(dst, data...)
			return append(dst, "\n\n"...)
		}
		dst = append(dst, data[:i]...)
		dst = append(dst, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}
