package schema

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// RequestError is a mistake in the client's request. The proxy answers it
// with HTTP 400 and OpenAI's error shape, type invalid_request_error, with
// Param as the error's param. Message never contains request content beyond
// field names, so it is safe to log.
type RequestError struct {
	// Param names the offending field (e.g. "messages",
	// "tools[1].function.parameters"); empty when the body as a whole is bad.
	Param string
	// Message says what is wrong, in lowercase, without trailing punctuation.
	Message string
}

func (e *RequestError) Error() string {
	if e.Param == "" {
		return e.Message
	}
	return e.Param + ": " + e.Message
}

func reqErr(param, msg string) *RequestError { return &RequestError{Param: param, Message: msg} }

func missing(param string) *RequestError {
	return reqErr(param, "missing required parameter: '"+param+"'")
}

func badType(param, want string, got gjson.Result) *RequestError {
	return reqErr(param, "invalid type for '"+param+"': expected "+want+", but got "+typeName(got)+" instead")
}

func typeName(r gjson.Result) string {
	switch r.Type {
	case gjson.Null:
		return "null"
	case gjson.False, gjson.True:
		return "a boolean"
	case gjson.Number:
		return "a number"
	case gjson.String:
		return "a string"
	default:
		if r.IsArray() {
			return "an array"
		}
		return "an object"
	}
}

// invalidJSONDetail says where encoding/json finds body invalid. It runs
// only on the error path.
func invalidJSONDetail(body []byte) string {
	var v json.RawMessage
	err := json.Unmarshal(body, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off := max(se.Offset-1, 0) // the offending byte
		if se.Offset >= int64(len(body)) && strings.HasPrefix(se.Error(), "unexpected end") {
			return "invalid JSON at offset " + strconv.Itoa(len(body)) + " (unexpected end)"
		}
		return "invalid JSON at offset " + strconv.FormatInt(off, 10)
	}
	return "invalid JSON"
}
