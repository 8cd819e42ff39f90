package proxy

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
