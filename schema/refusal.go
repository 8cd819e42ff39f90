package schema

import (
	"bytes"
	"strings"

	"github.com/tidwall/gjson"
)

// FinishContentFilter is the finish_reason of a response the provider's
// content filter stopped.
const FinishContentFilter = "content_filter"

// refusalPrefixBytes bounds how much of a message's content is read to
// match refusal phrases: a refusal says so in its first sentence.
const refusalPrefixBytes = 512

// Refusals judges whether a chat response is a refusal: the assistant
// message carries a non-null, non-empty refusal field, the finish_reason
// of choice 0 is content_filter, or the content starts (after white space)
// with one of the patterns, compared case-insensitively for ASCII letters
// and with a typographic apostrophe (’) read as '. A Refusals is immutable
// and safe for concurrent use; the zero value and nil know no patterns.
type Refusals struct {
	prefixes []string // lower-case, ’ replaced by '
}

// NewRefusals compiles patterns (empty ones are skipped).
func NewRefusals(patterns []string) *Refusals {
	r := &Refusals{}
	for _, p := range patterns {
		p = strings.TrimSpace(strings.ReplaceAll(strings.ToLower(p), "’", "'"))
		if p != "" {
			r.prefixes = append(r.prefixes, p)
		}
	}
	return r
}

// Message judges a non-streaming chat.completion body. body is only read.
func (r *Refusals) Message(body []byte) bool {
	if r == nil {
		r = &Refusals{}
	}
	// One pass over the body's quotes finds the keys and values that
	// matter; gjson looks only at what the pass found: every gjson walk
	// reads the whole answer again.
	top, _ := parseTop(body) // zero-copy: nothing below outlives body
	filter, refusal, content := scanQuotes(body)
	if filter {
		if f := top.Get("choices.0.finish_reason"); f.Type == gjson.String && f.Str == FinishContentFilter {
			return true
		}
	}
	if refusal {
		if ref := top.Get("choices.0.message.refusal"); ref.Type == gjson.String && ref.Str != "" {
			return true
		}
	}
	if len(r.prefixes) == 0 {
		return false
	}
	var raw string
	if content >= 0 {
		// In a chat.completion the first "content" key is
		// choices[0].message.content (id, object, created, model and
		// choices come first; Azure's content_filter_results do not
		// match), and only the opening of the answer matters.
		raw = b2s(body[content+len(contentKey)-1 : min(len(body), content+len(contentKey)-1+refusalPrefixBytes)])
	} else {
		c := top.Get("choices.0.message.content")
		switch {
		case c.Type == gjson.String:
		case c.IsArray():
			c = c.Get("0.text") // the first text part opens the answer
			if c.Type != gjson.String {
				return false
			}
		default:
			return false
		}
		raw = c.Raw
	}
	if len(raw) > refusalPrefixBytes {
		raw = raw[:refusalPrefixBytes]
	}
	var buf [refusalPrefixBytes]byte
	return r.Starts(appendUnquote(buf[:0], raw))
}

// contentKey opens the message content as providers write it (a
// pretty-printed body takes the slower full lookup).
const contentKey = `"content":"`

// scanQuotes jumps from quote to quote of body (quotes are sparse in an
// answer, and IndexByte is the fastest scan there is) and reports whether
// "content_filter" and a "refusal" key occur, and where the first
// `"content":"` starts (-1: nowhere).
func scanQuotes(body []byte) (filter, refusal bool, content int) {
	content = -1
	for i := 0; ; i++ {
		k := bytes.IndexByte(body[i:], '"')
		if k < 0 {
			return
		}
		i += k
		rest := b2s(body[i:])
		switch {
		case content < 0 && strings.HasPrefix(rest, contentKey):
			content = i
		case !filter && strings.HasPrefix(rest, `"`+FinishContentFilter+`"`):
			filter = true
		case !refusal && strings.HasPrefix(rest, `"refusal"`):
			refusal = true
		}
	}
}

// Stream judges an accumulated stream at its end.
func (r *Refusals) Stream(a *StreamAccumulator) bool {
	if a.finish == FinishContentFilter || len(a.refusal) > 0 {
		return true
	}
	return r.Starts(a.content)
}

// Starts reports whether content opens with one of the patterns.
func (r *Refusals) Starts(content []byte) bool {
	if r == nil || len(r.prefixes) == 0 {
		return false
	}
	i := 0
	for i < len(content) && (content[i] == ' ' || content[i] == '\n' || content[i] == '\r' || content[i] == '\t' || content[i] == '"' || content[i] == '*') {
		i++
	}
	content = content[i:]
	for _, p := range r.prefixes {
		if hasFoldedPrefix(content, p) {
			return true
		}
	}
	return false
}

// hasFoldedPrefix reports whether s starts with p (lower-case), ASCII
// letters compared without case and ’ in s matching ' in p.
func hasFoldedPrefix(s []byte, p string) bool {
	j := 0
	for k := 0; k < len(p); k++ {
		if j >= len(s) {
			return false
		}
		c := s[j]
		if p[k] == '\'' && c == 0xE2 && j+2 < len(s) && s[j+1] == 0x80 && s[j+2] == 0x99 {
			j += 3
			continue
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != p[k] {
			return false
		}
		j++
	}
	return true
}
