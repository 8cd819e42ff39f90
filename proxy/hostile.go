package proxy

// Bounds on what a hostile client can make the gateway keep (issue 12).

import (
	"unicode/utf8"

	"github.com/cairnhq/cairn/schema"
)

// maxEchoedModel bounds how much of a client's model name an error
// message repeats (issue 12.7: a 404 echoed 1 MiB names back).
const maxEchoedModel = 64

// modelPrefix returns the model name, or its first maxEchoedModel bytes
// (cut on a rune boundary) followed by "…" when it is longer.
func modelPrefix(m string) string {
	if len(m) <= maxEchoedModel {
		return m
	}
	n := maxEchoedModel
	for n > 0 && !utf8.RuneStart(m[n]) {
		n--
	}
	return m[:n] + "…"
}

// maxRefusedBody bounds the body a refused request's record keeps. Refused
// bodies are what a hostile client controls entirely (nesting bombs, 1 MiB
// model names and tools arrays, sent back to back), so their records must
// not queue and keep megabytes each; the start of the body is evidence
// enough of what was refused.
const maxRefusedBody = 2 << 10

// refusedBody returns body, or a copy of its first maxRefusedBody bytes
// when it is longer (a copy, so the full body can be collected at once).
func refusedBody(body []byte) []byte {
	if len(body) <= maxRefusedBody {
		return body
	}
	return append([]byte(nil), body[:maxRefusedBody]...)
}

// precheckBody refuses a large body that is not JSON or nests too deeply
// before the handler copies it, so that a nesting bomb costs one scan of
// the request's own buffer and no copy (issue 12.1). Small bodies are left
// to the parser, which checks the same.
func precheckBody(body []byte) error {
	if len(body) <= maxRefusedBody {
		return nil
	}
	return schema.CheckBody(body)
}
