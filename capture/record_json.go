package capture

import (
	"bytes"
	"encoding/json"
)

// MarshalJSON encodes r as its JSONL line (without the line break), so
// that every encoder of a record (the admin API, incident samples and
// their clones, postmortems) writes what the sinks write and none of them
// can fail on it: a NaN or infinite float becomes 0 and an out-of-range
// time the zero time, as in the JSONL file, where encoding/json would
// refuse the whole document (issue 12.2: an incident holding a sample with
// "temperature": +Inf panicked with "BUG: incident does not encode").
// Request and Response that are not one line of valid JSON (a record
// built by hand rather than by the writer) are written as JSON strings.
func (r Record) MarshalJSON() ([]byte, error) {
	r.Request = oneLineBody(r.Request)
	r.Response = oneLineBody(r.Response)
	b := appendRecord(nil, &r)
	return b[:len(b)-1], nil
}

// oneLineBody returns b as one line of JSON: as it is, compacted when it is
// valid JSON spread over lines (a record read back from an indented
// incident file), or else as a JSON string of its bytes.
func oneLineBody(b []byte) json.RawMessage {
	if oneLineJSON(b) {
		return b
	}
	if validJSON(b) {
		var c bytes.Buffer
		if json.Compact(&c, b) == nil {
			return c.Bytes()
		}
	}
	return stringJSON(b)
}

func stringJSON(b []byte) json.RawMessage { return appendJSONString(nil, string(b)) }

// oneLineJSON reports whether b is empty or valid JSON without a line
// break, as a body inside a JSONL record must be.
func oneLineJSON(b []byte) bool {
	return len(b) == 0 || validJSON(b) && oneLine(b)
}
