package schema

import "github.com/cairnhq/cairn/internal/jsonstr"

// AppendError appends OpenAI's error JSON to dst and returns the extended
// slice:
//
//	{"error":{"message":"…","type":"…","param":null,"code":null}}
//
// param and code are null when empty, strings otherwise (clients switch on
// code, so it is never a number). Every value is escaped as encoding/json
// would, and invalid UTF-8 becomes U+FFFD. It allocates only when dst grows.
func AppendError(dst []byte, message, typ, param, code string) []byte {
	dst = append(dst, `{"error":{"message":`...)
	dst = appendJSONString(dst, message)
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, typ)
	dst = append(dst, `,"param":`...)
	dst = appendNullableString(dst, param)
	dst = append(dst, `,"code":`...)
	dst = appendNullableString(dst, code)
	return append(dst, "}}"...)
}

// AppendSSEError appends the error event Cairn sends when a stream fails
// after its first byte (the status can no longer change):
//
//	data: {"error":{"message":"…","type":"…","param":null,"code":"…"}}\n\n
func AppendSSEError(dst []byte, message, typ, code string) []byte {
	dst = append(dst, "data: "...)
	dst = AppendError(dst, message, typ, "", code)
	return append(dst, "\n\n"...)
}

func appendNullableString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "null"...)
	}
	return appendJSONString(dst, s)
}

// appendJSONString appends s as a JSON string literal. It escapes what
// encoding/json escapes except the HTML characters <, > and & (valid JSON
// either way): quotes, backslashes, control characters, U+2028 and U+2029;
// each byte of invalid UTF-8 becomes \ufffd.
func appendJSONString(dst []byte, s string) []byte { return jsonstr.Append(dst, s) }
