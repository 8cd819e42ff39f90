package schema

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Issue 12.10: a JSON object that repeats a key can be read two ways
// (gjson and some servers take the first value, encoding/json and Python
// the last), so the gateway and the upstream could act on different
// values: {"stream_options":{"include_usage":false,"include_usage":true}}
// made streams report no usage and TPM was never charged. Every object
// the gateway reads (the top level, stream_options, response_format and
// its schema, tools and their parameters, tool_choice, messages and their
// content parts) is refused with 400 naming the repeated key.

// dupKey returns the first key that the object obj repeats, compared as
// decoded strings ("role" and "r\u006fle" are the same key).
func dupKey(obj gjson.Result) (string, bool) {
	var keys keySet
	dup, found := "", false
	eachMember(obj.Raw, func(k, _ string) bool {
		if !keys.add(k) {
			dup, found = k, true
			return false
		}
		return true
	})
	return dup, found
}

// keySet holds the keys of one object seen so far, to find a repeated one:
// an array while there are few (no allocation), a map beyond.
type keySet struct {
	small [16]string
	n     int
	set   map[string]struct{}
}

// add records k and reports false when k was already there.
func (ks *keySet) add(k string) bool {
	if ks.set == nil {
		for _, s := range ks.small[:ks.n] {
			if s == k {
				return false
			}
		}
		if ks.n < len(ks.small) {
			ks.small[ks.n] = k
			ks.n++
			return true
		}
		ks.set = make(map[string]struct{}, 2*ks.n)
		for _, s := range ks.small[:ks.n] {
			ks.set[s] = struct{}{}
		}
	}
	if _, ok := ks.set[k]; ok {
		return false
	}
	ks.set[k] = struct{}{}
	return true
}

// eachMember calls fn with the decoded key and the raw value of each member
// of raw, a valid JSON object, in order, until fn returns false. Unlike
// gjson's ForEach it decodes no value, so a long escaped content string
// costs a scan, not a copy; a key is copied only when it holds an escape.
func eachMember(raw string, fn func(key, value string) bool) {
	i := skipSpaceS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return
	}
	i++
	for {
		i = skipSpaceS(raw, i)
		if i >= len(raw) || raw[i] != '"' {
			return
		}
		end := stringEndS(raw, i)
		key := raw[i+1 : end-1]
		if strings.IndexByte(key, '\\') >= 0 {
			key = string(appendUnquote(nil, raw[i:end]))
		}
		i = skipSpaceS(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return
		}
		i = skipSpaceS(raw, i+1)
		vend := valueEndS(raw, i)
		if !fn(key, raw[i:vend]) {
			return
		}
		i = skipSpaceS(raw, vend)
		if i >= len(raw) || raw[i] != ',' {
			return
		}
		i++
	}
}

func skipSpaceS(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

// stringEndS returns the index past the string token starting at s[i]:
// the first '"' after it not escaped by an odd run of backslashes.
func stringEndS(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		k := strings.IndexByte(s[j:], '"')
		if k < 0 {
			return len(s)
		}
		j += k
		n := 0
		for b := j - 1; b > i && s[b] == '\\'; b-- {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
	}
	return len(s)
}

// valueEndS returns the index past the valid JSON value starting at s[i],
// counting nesting rather than recursing.
func valueEndS(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch c := s[i]; c {
		case '"':
			i = stringEndS(s, i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return i
}

// checkDup returns a *RequestError naming path.key when the object v
// (named path) repeats key; nil when v is not an object or repeats nothing.
func checkDup(path string, v gjson.Result) *RequestError {
	if !v.IsObject() {
		return nil
	}
	if k, ok := dupKey(v); ok {
		return dupErr(join(path, k))
	}
	return nil
}

func dupErr(param string) *RequestError {
	return reqErr(param, "duplicate key '"+param+"' in the request body")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// findDupDeep returns the path of the first repeated key in any object
// inside v (v itself included), named from path; "" when there is none.
// It recurses once per nesting level, so v must have passed a depth check
// (request bodies are at most MaxRequestDepth deep).
func findDupDeep(path string, v gjson.Result) string {
	switch {
	case v.IsObject():
		if k, ok := dupKey(v); ok {
			return join(path, k)
		}
		found := ""
		v.ForEach(func(k, c gjson.Result) bool {
			if c.IsObject() || c.IsArray() {
				found = findDupDeep(join(path, k.Str), c)
			}
			return found == ""
		})
		return found
	case v.IsArray():
		found, i := "", 0
		v.ForEach(func(_, c gjson.Result) bool {
			if c.IsObject() || c.IsArray() {
				found = findDupDeep(path+"["+strconv.Itoa(i)+"]", c)
			}
			i++
			return found == ""
		})
		return found
	}
	return ""
}

// checkMessageDups refuses a message that repeats a key, or a content
// part that does: the masker, the contract and the upstream must all read
// the same role and content.
func checkMessageDups(i int, m gjson.Result) *RequestError {
	var role gjson.Result
	return checkMessage(i, m.Raw, &role)
}

// checkMessage is checkMessageDups for the message raw, in one pass over
// its members that also finds its role (issue 15: the role, the repeated
// keys and the content were three passes over a long content string).
func checkMessage(i int, raw string, role *gjson.Result) *RequestError {
	var content string
	seenRole, seenContent := false, false
	dup, found := "", false
	var keys keySet
	eachMember(raw, func(k, v string) bool {
		switch k {
		case "role":
			if !seenRole {
				*role = gjson.Parse(v)
			}
			seenRole = true
		case "content":
			if !seenContent {
				content = v
			}
			seenContent = true
		}
		if !keys.add(k) {
			dup, found = k, true
			return false
		}
		return true
	})
	if found {
		return dupErr(join("messages["+strconv.Itoa(i)+"]", dup))
	}
	if len(content) == 0 || content[0] != '[' {
		return nil
	}
	p := "messages[" + strconv.Itoa(i) + "]"
	c := gjson.Parse(content)
	var perr *RequestError
	j := 0
	c.ForEach(func(_, part gjson.Result) bool {
		perr = checkDup(p+".content["+strconv.Itoa(j)+"]", part)
		j++
		return perr == nil
	})
	return perr
}
