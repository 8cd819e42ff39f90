package schema

import (
	"strconv"

	"github.com/tidwall/gjson"
)

// What chat completions and the Responses API check alike: the type of a
// structured output format, the tools array and a function tool's name and
// parameters, and the tool_choice modes. Paths are built only for an error.

// readObject checks an optional object member at path: ok is false when
// it is absent or null, perr set when it is not an object or repeats a key.
func readObject(path string, v gjson.Result) (ok bool, perr *RequestError) {
	switch {
	case !v.Exists() || v.Type == gjson.Null:
		return false, nil
	case !v.IsObject():
		return false, badType(path, "an object", v)
	}
	return true, checkDup(path, v)
}

// readFormatType reads the type of the format object at path (chat's
// response_format, Responses' text.format) into r.ResponseFormat; schema
// reports a json_schema format, whose schema the caller reads where its API
// puts it.
func readFormatType(r *Request, path string, typ gjson.Result) (schema bool, perr *RequestError) {
	switch {
	case !typ.Exists():
		return false, missing(path + ".type")
	case typ.Type != gjson.String:
		return false, badType(path+".type", "a string", typ)
	}
	switch typ.Str {
	case "text":
		r.ResponseFormat = "text"
	case "json_object":
		r.ResponseFormat = "json_object"
	case "json_schema":
		r.ResponseFormat = "json_schema"
		return true, nil
	default:
		return false, reqErr(path+".type", "invalid value for '"+path+".type': expected one of 'text', 'json_object' or 'json_schema'")
	}
	return false, nil
}

// readToolList checks tools as an array of tools each passing check (i is
// the tool's index) and keeps it in r; requireOne refuses an empty array
// (chat does, Responses allows it and keeps nothing).
func readToolList(r *Request, body []byte, off int, v gjson.Result, check func(i int, t gjson.Result) *RequestError, requireOne bool) *RequestError {
	switch {
	case v.Type == gjson.Null:
		return nil
	case !v.IsArray():
		return badType("tools", "an array", v)
	}
	var perr *RequestError
	n := 0
	v.ForEach(func(_, t gjson.Result) bool {
		perr = check(n, t)
		n++
		return perr == nil
	})
	if perr != nil {
		return perr
	}
	if n == 0 {
		if requireOne {
			return reqErr("tools", "invalid 'tools': empty array; expected at least one tool")
		}
		return nil
	}
	r.Tools = sub(body, off, v.Raw)
	r.ToolCount = n
	return nil
}

// toolObject checks that the i-th tool t is an object without a repeated
// key; p is its path, for the errors the caller may still find.
func toolObject(i int, t gjson.Result) (p string, perr *RequestError) {
	p = "tools[" + strconv.Itoa(i) + "]"
	if !t.IsObject() {
		return p, badType(p, "an object", t)
	}
	return p, checkDup(p, t)
}

// checkFunction checks a function's name (a non-empty string) and its
// parameters (an object when given) in fn, the object at p+at: chat nests
// them under "function", Responses puts them on the tool itself.
func checkFunction(p, at string, fn gjson.Result) *RequestError {
	name := fn.Get("name")
	switch {
	case !name.Exists():
		return missing(p + at + ".name")
	case name.Type != gjson.String:
		return badType(p+at+".name", "a string", name)
	case name.Str == "":
		return reqErr(p+at+".name", "invalid '"+p+at+".name': empty string")
	}
	if ps := fn.Get("parameters"); ps.Exists() && ps.Type != gjson.Null && !ps.IsObject() {
		return badType(p+at+".parameters", "an object", ps)
	}
	return nil
}

// readChoice checks tool_choice: one of the modes "none", "auto" and
// "required" (else the error modeErr), or an object checkObject accepts;
// and keeps it in r.
func readChoice(r *Request, body []byte, off int, v gjson.Result, modeErr string, checkObject func(v gjson.Result) *RequestError) *RequestError {
	switch {
	case v.Type == gjson.Null:
		return nil
	case v.Type == gjson.String:
		switch v.Str {
		case "none", "auto", "required":
		default:
			return reqErr("tool_choice", modeErr)
		}
	case v.IsObject():
		if d := findDupDeep("tool_choice", v); d != "" {
			return dupErr(d)
		}
		if perr := checkObject(v); perr != nil {
			return perr
		}
	default:
		return badType("tool_choice", "a string or an object", v)
	}
	r.ToolChoice = sub(body, off, v.Raw)
	return nil
}
