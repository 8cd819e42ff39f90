package jsonscan

import (
	"strings"
	"testing"
)

func TestEachMember(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // key=value
		end      int      // -1: not an object
	}{
		{"empty", `{}`, nil, 2},
		{"spaces", ` { "a" : 1 , "b":"x\"}" ,"c" : [1,{"d":"]"}] } `, []string{`"a"=1`, `"b"="x\"}"`, `"c"=[1,{"d":"]"}]`}, 46},
		{"nested object", `{"m":{"content":"{\"a\":1}"},"z":null}`, []string{`"m"={"content":"{\"a\":1}"}`, `"z"=null`}, 38},
		{"escaped key", `{"a\"b":true}`, []string{`"a\"b"=true`}, 13},
		{"not an object", `[1]`, nil, -1},
		{"missing value", `{"a":}`, nil, -1},
		{"missing colon", `{"a" 1}`, nil, -1},
		{"unterminated string", `{"a":"x`, nil, -1},
		{"unterminated object", `{"a":1`, []string{`"a"=1`}, -1},
		{"bad separator", `{"a":1;"b":2}`, []string{`"a"=1`}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			end := EachMember(tt.in, 0, func(k string, vs, ve int) bool {
				got = append(got, k+"="+tt.in[vs:ve])
				return true
			})
			if end != tt.end || strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("EachMember(%q) = %d, %q; want %d, %q", tt.in, end, got, tt.end, tt.want)
			}
		})
	}
}

func TestFirstElement(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`[{"a":[1,2]},2]`, `{"a":[1,2]}`},
		{` [ "x]" ]`, `"x]"`},
		{`[]`, ""},
		{`{}`, ""},
		{`[`, ""},
	} {
		vs, ve, ok := FirstElement(tt.in, 0)
		got := ""
		if ok {
			got = tt.in[vs:ve]
		}
		if got != tt.want {
			t.Errorf("FirstElement(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// TestEachMemberDeep: a body of a million '[' costs a loop, not a stack.
func TestEachMemberDeep(t *testing.T) {
	in := `{"a":` + strings.Repeat("[", 1<<20) + strings.Repeat("]", 1<<20) + `}`
	n := 0
	if end := EachMember(in, 0, func(string, int, int) bool { n++; return true }); end != len(in) || n != 1 {
		t.Errorf("EachMember(deep) = %d with %d members; want %d with 1", end, n, len(in))
	}
}
