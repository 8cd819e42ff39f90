package schema

import (
	"math"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

func readModel(r *Request, v gjson.Result) *RequestError {
	switch v.Type {
	case gjson.String:
		if len(v.Str) > MaxModelBytes {
			return reqErr("model", "invalid 'model': longer than "+strconv.Itoa(MaxModelBytes)+" bytes")
		}
		r.Model = strings.Clone(v.Str)
		return nil
	case gjson.Null:
		return nil // reported as missing
	}
	return badType("model", "a string", v)
}

func readBool(dst *bool, param string, v gjson.Result) *RequestError {
	switch v.Type {
	case gjson.True:
		*dst = true
	case gjson.False, gjson.Null:
		*dst = false
	default:
		return badType(param, "a boolean", v)
	}
	return nil
}

func readString(dst *string, param string, v gjson.Result) *RequestError {
	switch v.Type {
	case gjson.String:
		*dst = strings.Clone(v.Str)
	case gjson.Null:
	default:
		return badType(param, "a string", v)
	}
	return nil
}

func readTokens(param string, v gjson.Result) (int, *RequestError) {
	switch {
	case !v.Exists() || v.Type == gjson.Null:
		return 0, nil
	case v.Type != gjson.Number:
		return 0, badType(param, "an integer", v)
	case v.Num != math.Trunc(v.Num) || v.Num < 0 || v.Num > math.MaxInt32:
		return 0, reqErr(param, "invalid '"+param+"': expected a non-negative integer")
	}
	return int(v.Num), nil
}

func readStreamOptions(r *Request, v gjson.Result) *RequestError {
	switch {
	case v.Type == gjson.Null:
		return nil
	case !v.IsObject():
		return badType("stream_options", "an object", v)
	}
	if perr := checkDup("stream_options", v); perr != nil {
		return perr
	}
	var perr *RequestError
	v.ForEach(func(k, o gjson.Result) bool {
		if k.Str == "include_usage" {
			perr = readBool(&r.IncludeUsage, "stream_options.include_usage", o)
		}
		return perr == nil
	})
	return perr
}

func readMessages(r *Request, v gjson.Result) *RequestError {
	switch {
	case !v.Exists() || v.Type == gjson.Null:
		return missing("messages")
	case !v.IsArray():
		return badType("messages", "an array", v)
	}
	var perr *RequestError
	n := 0
	eachElement(v.Raw, func(raw string) bool {
		m := gjson.Parse(raw)
		if !m.IsObject() {
			perr = badType("messages["+strconv.Itoa(n)+"]", "an object", m)
			return false
		}
		var role gjson.Result
		if perr = checkMessage(n, raw, &role); perr != nil {
			return false
		}
		switch {
		case !role.Exists():
			perr = missing("messages[" + strconv.Itoa(n) + "].role")
		case role.Type != gjson.String:
			perr = badType("messages["+strconv.Itoa(n)+"].role", "a string", role)
		}
		n++
		return perr == nil
	})
	if perr != nil {
		return perr
	}
	if n == 0 {
		return reqErr("messages", "invalid 'messages': empty array; expected at least one message")
	}
	r.MessageCount = n
	return nil
}

// readResponseFormat reads response_format; base is the offset of v in
// body (gjson Index values of what is inside v are relative to it).
func readResponseFormat(r *Request, body []byte, base int, v gjson.Result) *RequestError {
	if ok, perr := readObject("response_format", v); !ok || perr != nil {
		return perr
	}
	var typ, js gjson.Result
	v.ForEach(func(k, o gjson.Result) bool {
		switch k.Str {
		case "type":
			typ = o
		case "json_schema":
			js = o
		}
		return true
	})
	if schema, perr := readFormatType(r, "response_format", typ); !schema {
		return perr
	}
	switch {
	case !js.Exists() || js.Type == gjson.Null:
		return missing("response_format.json_schema")
	case !js.IsObject():
		return badType("response_format.json_schema", "an object", js)
	}
	if perr := checkDup("response_format.json_schema", js); perr != nil {
		return perr
	}
	var perr *RequestError
	js.ForEach(func(k, o gjson.Result) bool {
		if k.Str != "schema" {
			return true
		}
		switch {
		case o.IsObject():
			r.ResponseSchema = sub(body, base+o.Index, o.Raw)
		case o.Type == gjson.Null:
		default:
			perr = badType("response_format.json_schema.schema", "an object", o)
		}
		return false
	})
	return perr
}

func readTools(r *Request, body []byte, off int, v gjson.Result) *RequestError {
	return readToolList(r, body, off, v, checkTool, true)
}

// checkTool checks the shape Cairn relies on: a function tool names its
// function with a non-empty string and gives parameters as an object. The
// parameters are compiled later, by Contracts.Prepare.
func checkTool(i int, t gjson.Result) *RequestError {
	p, perr := toolObject(i, t)
	if perr != nil {
		return perr
	}
	for _, sub := range [...]string{"function", "custom"} {
		if perr := checkDup(p+"."+sub, t.Get(sub)); perr != nil {
			return perr
		}
	}
	typ := t.Get("type")
	switch {
	case !typ.Exists():
		return missing(p + ".type")
	case typ.Type != gjson.String:
		return badType(p+".type", "a string", typ)
	}
	switch typ.Str {
	case "function":
		fn := t.Get("function")
		switch {
		case !fn.Exists():
			return missing(p + ".function")
		case !fn.IsObject():
			return badType(p+".function", "an object", fn)
		}
		return checkFunction(p, ".function", fn)
	case "custom":
		name := t.Get("custom.name")
		if name.Type != gjson.String || name.Str == "" {
			return reqErr(p+".custom.name", "invalid '"+p+".custom.name': expected a non-empty string")
		}
	}
	return nil
}

func readToolChoice(r *Request, body []byte, off int, v gjson.Result) *RequestError {
	return readChoice(r, body, off, v, "invalid value for 'tool_choice': expected 'none', 'auto', 'required' or an object naming a function", checkChatChoice)
}

// checkChatChoice checks a tool_choice object of chat completions.
func checkChatChoice(v gjson.Result) *RequestError {
	switch v.Get("type").Str {
	case "function":
		if n := v.Get("function.name"); n.Type != gjson.String || n.Str == "" {
			return reqErr("tool_choice.function.name", "invalid 'tool_choice.function.name': expected a non-empty string")
		}
	case "custom":
		if n := v.Get("custom.name"); n.Type != gjson.String || n.Str == "" {
			return reqErr("tool_choice.custom.name", "invalid 'tool_choice.custom.name': expected a non-empty string")
		}
	case "allowed_tools":
		if m := v.Get("allowed_tools.mode"); m.Type != gjson.String || (m.Str != "auto" && m.Str != "required") {
			return reqErr("tool_choice.allowed_tools.mode", "invalid value for 'tool_choice.allowed_tools.mode': expected 'auto' or 'required'")
		}
	default:
		return reqErr("tool_choice.type", "invalid value for 'tool_choice.type': expected 'function', 'custom' or 'allowed_tools'")
	}
	return nil
}

func isEmptyArray(raw string) bool {
	for i := 1; i < len(raw); i++ {
		if !isSpace(raw[i]) {
			return raw[i] == ']'
		}
	}
	return true
}
