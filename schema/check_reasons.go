package schema

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// validate validates v against s and adds one reason per failing leaf,
// named prefix + the JSON pointer of the value ("content" for the root of
// the content).
func validate(s *jsonschema.Schema, v any, prefix string, r *reasons) {
	defer func() {
		// The schema may come from the request; a validator bug it
		// triggers must fail the check, not crash the gateway.
		if p := recover(); p != nil {
			r.add(placeOf(prefix, "") + ": the schema could not be checked")
		}
	}()
	err := s.Validate(v)
	if err == nil {
		return
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		r.add(placeOf(prefix, "") + ": " + err.Error())
		return
	}
	var out []string
	collect(ve, prefix, &out)
	slices.Sort(out)
	for _, s := range out {
		r.add(s)
	}
}

func placeOf(prefix, loc string) string {
	if prefix == "" && loc == "" {
		return "content"
	}
	return prefix + loc
}

func keyword(ve *jsonschema.ValidationError) string {
	k := ve.KeywordLocation
	if i := strings.LastIndexByte(k, '/'); i >= 0 {
		k = k[i+1:]
	}
	return k
}

func collect(ve *jsonschema.ValidationError, prefix string, out *[]string) {
	if len(*out) > 4*MaxReasons {
		return
	}
	loc := placeOf(prefix, ve.InstanceLocation)
	if len(ve.Causes) == 0 {
		switch keyword(ve) {
		case "required":
			for _, p := range quotedNames(strings.TrimPrefix(ve.Message, "missing properties: ")) {
				*out = append(*out, prefix+ve.InstanceLocation+"/"+escapePointer(p)+": missing property")
			}
			return
		case "additionalProperties":
			msg := strings.TrimSuffix(strings.TrimPrefix(ve.Message, "additionalProperties "), " not allowed")
			for _, p := range quotedNames(msg) {
				*out = append(*out, prefix+ve.InstanceLocation+"/"+escapePointer(p)+": unexpected property")
			}
			return
		case "format":
			// The library's message quotes the value itself; keep values
			// (possibly personal data) out of reasons.
			msg := ve.Message
			if i := strings.LastIndex(msg, " is not valid "); i >= 0 {
				msg = "not a valid " + msg[i+len(" is not valid "):]
			}
			*out = append(*out, loc+": "+msg)
			return
		}
		*out = append(*out, loc+": "+ve.Message)
		return
	}
	if k := keyword(ve); k == "anyOf" || k == "oneOf" {
		*out = append(*out, loc+": "+alternatives(ve, k))
		return
	}
	for _, c := range ve.Causes {
		collect(c, prefix, out)
	}
}

// alternatives summarises a failed anyOf/oneOf: when every alternative
// failed on the value's type, "expected string or null, but got number";
// otherwise that no alternative matched.
func alternatives(ve *jsonschema.ValidationError, k string) string {
	var want []string
	got := ""
	for _, c := range ve.Causes {
		leaf := c
		for len(leaf.Causes) == 1 {
			leaf = leaf.Causes[0]
		}
		if len(leaf.Causes) > 0 || keyword(leaf) != "type" || leaf.InstanceLocation != ve.InstanceLocation {
			return "matches none of the " + k + " alternatives"
		}
		w, g, ok := strings.Cut(strings.TrimPrefix(leaf.Message, "expected "), ", but got ")
		if !ok {
			return "matches none of the " + k + " alternatives"
		}
		want = append(want, w)
		got = g
	}
	if len(want) == 0 {
		return "matches none of the " + k + " alternatives"
	}
	return "expected " + strings.Join(want, " or ") + ", but got " + got
}

// quotedNames parses the library's list of quoted names: 'a', 'b\'c'.
func quotedNames(s string) []string {
	var names []string
	for {
		i := strings.IndexByte(s, '\'')
		if i < 0 {
			return names
		}
		s = s[i+1:]
		var b strings.Builder
		j := 0
		for ; j < len(s); j++ {
			if s[j] == '\\' && j+1 < len(s) {
				b.WriteByte(s[j])
				b.WriteByte(s[j+1])
				j++
				continue
			}
			if s[j] == '\'' {
				break
			}
			b.WriteByte(s[j])
		}
		names = append(names, unquoteName(b.String()))
		if j >= len(s) {
			return names
		}
		s = s[j+1:]
	}
}

// unquoteName undoes the library's quote(): %q with \" unescaped and '
// escaped.
func unquoteName(inner string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(inner); i++ {
		switch c := inner[i]; {
		case c == '\\' && i+1 < len(inner):
			if inner[i+1] == '\'' {
				b.WriteByte('\'')
			} else {
				b.WriteByte(c)
				b.WriteByte(inner[i+1])
			}
			i++
		case c == '"':
			b.WriteString(`\"`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	if s, err := strconv.Unquote(b.String()); err == nil {
		return s
	}
	return inner
}

func escapePointer(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func (r *reasons) add(s string) {
	s = clip(s)
	if slices.Contains(r.list, s) {
		return
	}
	if len(r.list) >= MaxReasons {
		r.dropped++
		return
	}
	r.list = append(r.list, s)
}

func (r *reasons) done() []string {
	if r.dropped > 0 {
		r.list[MaxReasons-1] = "and " + strconv.Itoa(r.dropped+1) + " more reasons"
	}
	return r.list
}

// clip cuts s to MaxReasonBytes at a rune boundary, marking the cut.
func clip(s string) string {
	if len(s) <= MaxReasonBytes {
		return s
	}
	const ell = "…"
	n := MaxReasonBytes - len(ell)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + ell
}

// reasons collects a verdict's reasons: deduplicated, at most MaxReasons,
// each clipped to MaxReasonBytes.
type reasons struct {
	list    []string
	dropped int
}
