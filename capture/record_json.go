package capture

import "encoding/json"

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
	if !oneLineJSON(r.Request) {
		r.Request = stringJSON(r.Request)
	}
	if !oneLineJSON(r.Response) {
		r.Response = stringJSON(r.Response)
	}
	b := appendRecord(nil, &r)
	return b[:len(b)-1], nil
}

func stringJSON(b []byte) json.RawMessage { return appendJSONString(nil, string(b)) }
