package proxy

// Bounds on what a hostile client can make the gateway keep (issue 12).

import "unicode/utf8"

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

// refusedBody returns an owned copy of body's first maxRefusedBody bytes
// (all of it when shorter). body may be the request's own buffer.
func refusedBody(body []byte) []byte {
	return append([]byte(nil), body[:min(len(body), maxRefusedBody)]...)
}
