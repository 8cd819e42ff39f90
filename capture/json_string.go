package capture

import "github.com/cairnhq/cairn/internal/jsonstr"

// appendJSONString appends s as a JSON string (internal/jsonstr.Append):
// quotes, backslashes and control characters escaped, U+2028 and U+2029
// escaped, each byte of invalid UTF-8 written as \ufffd, HTML characters
// not escaped.
func appendJSONString(dst []byte, s string) []byte { return jsonstr.Append(dst, s) }
