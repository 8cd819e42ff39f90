package loadtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v5"
	"github.com/tidwall/gjson"
)

// validate checks instance against schema with a real JSON Schema validator.
func validate(t *testing.T, schema, instance string) error {
	t.Helper()
	c := jsonschema.NewCompiler()
	if err := c.AddResource("mem://s.json", strings.NewReader(schema)); err != nil {
		t.Fatalf("add schema: %v", err)
	}
	s, err := c.Compile("mem://s.json")
	if err != nil {
		t.Fatalf("compile %s: %v", schema, err)
	}
	dec := json.NewDecoder(strings.NewReader(instance))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	return s.Validate(v)
}

func TestAppendInstanceSatisfiesSchema(t *testing.T) {
	tests := []struct {
		name, schema string
		want         string // exact output when set
	}{
		{"string", `{"type":"string"}`, `"ok"`},
		{"enum first", `{"type":"string","enum":["b","a"]}`, `"b"`},
		{"const", `{"const":{"x":[1]}}`, `{"x":[1]}`},
		{"integer bounds", `{"type":"integer","minimum":10,"maximum":20}`, `15`},
		{"integer exclusive", `{"type":"integer","exclusiveMinimum":3}`, `4`},
		{"number bounds", `{"type":"number","minimum":0,"maximum":1}`, `0.5`},
		{"number multipleOf", `{"type":"number","minimum":0.3,"multipleOf":0.25}`, ``},
		{"integer only max", `{"type":"integer","maximum":-5}`, `-5`},
		{"boolean", `{"type":"boolean"}`, `true`},
		{"null", `{"type":"null"}`, `null`},
		{"nullable type list", `{"type":["null","integer"]}`, `1`},
		{"lengths", `{"type":"string","minLength":6,"maxLength":8}`, `"okxxxx"`},
		{"maxLength short", `{"type":"string","maxLength":1}`, `"o"`},
		{"pattern", `{"type":"string","pattern":"^[A-Z]{3}-[0-9]{3}$"}`, `"ABC-123"`},
		{"formats", `{"type":"object","properties":{"a":{"type":"string","format":"date-time"},"b":{"type":"string","format":"email"},"c":{"type":"string","format":"uuid"},"d":{"type":"string","format":"uri"},"e":{"type":"string","format":"date"},"f":{"type":"string","format":"ipv4"}},"required":["a","b","c","d","e","f"]}`, ``},
		{"nested object", `{"type":"object","properties":{"user":{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":18}},"required":["name","age"],"additionalProperties":false}},"required":["user"],"additionalProperties":false}`, `{"user":{"name":"ok","age":18}}`},
		{"array minItems", `{"type":"array","items":{"type":"integer"},"minItems":3}`, `[1,1,1]`},
		{"array unique enum", `{"type":"array","items":{"enum":["a","b","c"]},"minItems":2,"uniqueItems":true}`, `["a","b"]`},
		{"array unique strings", `{"type":"array","items":{"type":"string"},"minItems":3,"uniqueItems":true}`, ``},
		{"array maxItems 0", `{"type":"array","maxItems":0}`, `[]`},
		{"tuple prefixItems", `{"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"minItems":2}`, `["ok",1]`},
		{"ref defs", `{"$defs":{"p":{"type":"object","properties":{"x":{"type":"number"}},"required":["x"]}},"type":"object","properties":{"a":{"$ref":"#/$defs/p"},"b":{"type":"array","items":{"$ref":"#/$defs/p"}}},"required":["a","b"]}`, ``},
		{"ref definitions", `{"definitions":{"id":{"type":"string","minLength":3}},"type":"object","properties":{"id":{"$ref":"#/definitions/id"}},"required":["id"]}`, `{"id":"okx"}`},
		{"recursive ref", `{"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},"next":{"anyOf":[{"$ref":"#/$defs/node"},{"type":"null"}]}},"required":["v"]}},"$ref":"#/$defs/node"}`, ``},
		{"anyOf skips null", `{"anyOf":[{"type":"null"},{"type":"string","enum":["x"]}]}`, `"x"`},
		{"oneOf", `{"oneOf":[{"type":"integer","minimum":5},{"type":"string"}]}`, `5`},
		{"allOf merge", `{"allOf":[{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]},{"properties":{"b":{"type":"boolean"}},"required":["b"]}]}`, `{"a":"ok","b":true}`},
		{"required without properties", `{"type":"object","required":["q"]}`, `{"q":"ok"}`},
		{"minProperties", `{"type":"object","minProperties":2}`, ``},
		{"no type inferred object", `{"properties":{"n":{"minimum":2}},"required":["n"]}`, `{"n":2}`},
		{"empty schema", `{}`, `"ok"`},
		{"true schema", `true`, `"ok"`},
		{"escape names", `{"type":"object","properties":{"we\"ird\nkey":{"type":"string"}},"required":["we\"ird\nkey"]}`, `{"we\"ird\nkey":"ok"}`},
		{"strict openai", `{"type":"object","properties":{"steps":{"type":"array","items":{"type":"object","properties":{"explanation":{"type":"string"},"output":{"type":"string"}},"required":["explanation","output"],"additionalProperties":false}},"final_answer":{"type":"string"}},"required":["steps","final_answer"],"additionalProperties":false}`, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := gjson.Parse(tt.schema)
			got := string(appendInstance(nil, s))
			if !json.Valid([]byte(got)) {
				t.Fatalf("appendInstance(%s) = %s; not JSON", tt.schema, got)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("appendInstance(%s) = %s; want %s", tt.schema, got, tt.want)
			}
			if err := validate(t, tt.schema, got); err != nil {
				t.Errorf("appendInstance(%s) = %s; invalid: %v", tt.schema, got, err)
			}
		})
	}
}

func TestSplitPieces(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want []string
	}{
		{"", 4, nil},
		{"abcdefgh", 4, []string{"ab", "cd", "ef", "gh"}},
		{"abc", 8, []string{"a", "b", "c"}},
		{"abcde", 2, []string{"abc", "de"}},
		{"héllo wörld", 3, []string{"héll", "o wö", "rld"}},
		{"日本語", 9, []string{"日", "本", "語"}},
	}
	for _, tt := range tests {
		got := splitPieces(tt.s, tt.n)
		if strings.Join(got, "") != tt.s || len(got) != len(tt.want) {
			t.Errorf("splitPieces(%q, %d) = %q; want %q", tt.s, tt.n, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] || !utf8.ValidString(got[i]) {
				t.Errorf("splitPieces(%q, %d) = %q; want %q", tt.s, tt.n, got, tt.want)
				break
			}
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uote\back`, "ctl\x00\x01\x1f\n\r\t", "bad\xff\xfeutf8", "sep\u2028\u2029", "日本語"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendJSONString(%q) = %s; not a JSON string: %v", s, b, err)
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		// ToValidUTF8 merges runs of bad bytes; we replace each byte.
		if utf8.ValidString(s) && got != want {
			t.Errorf("appendJSONString(%q) decodes to %q", s, got)
		}
		if bytes.ContainsAny(b[1:len(b)-1], "\x00\n\r") {
			t.Errorf("appendJSONString(%q) = %q; raw control characters", s, b)
		}
	})
}

func FuzzAppendInstance(f *testing.F) {
	for _, s := range []string{`{"type":"object","properties":{"a":{"type":"string"}}}`, `{"$ref":"#"}`, `{"anyOf":[]}`, `{"type":["array"],"items":{"$ref":"#/items"}}`, `[1,2]`, `"x"`, `{"enum":[]}`, `{"type":"integer","minimum":5,"maximum":1}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, schema string) {
		if !gjson.Valid(schema) {
			return
		}
		s := gjson.Parse(schema)
		if out := appendInstance(nil, s); !json.Valid(out) {
			t.Errorf("appendInstance(%s) = %s; not JSON", schema, out)
		}
	})
}
