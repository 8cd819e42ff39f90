package schema

import (
	"strings"

	"github.com/tidwall/gjson"
)

// What a chat completions stream and a Responses stream fold alike: each
// event's data is one JSON object, and the id, model and usage it carries
// (a chat chunk at its top, a Responses event in its response object).

// topObject counts one event and parses its data; ok is false, and the
// event counted as bad, when the data is not a JSON object.
func (a *StreamAccumulator) topObject(data []byte) (top gjson.Result, ok bool) {
	a.chunks++
	top, _ = parseTop(data)
	if !top.IsObject() {
		a.bad++
		return top, false
	}
	return top, true
}

// noteHead notes the member k ("id", "model" or "usage") with value v: the
// first string id of at most maxID bytes and the first string model are
// kept, and the latest usage.
func (a *StreamAccumulator) noteHead(k string, v gjson.Result, maxID int) {
	switch k {
	case "id":
		if a.id == "" && v.Type == gjson.String && len(v.Str) <= maxID {
			a.id = strings.Clone(v.Str)
		}
	case "model":
		if a.model == "" && v.Type == gjson.String {
			a.model = strings.Clone(v.Str)
		}
	case "usage":
		if u, ok := usageOf(v); ok {
			a.usage, a.hasUsage = u, true
		}
	}
}
