package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		depth int
		want  Result
	}{
		{"object", `{"a":[1,2,{"b":null}],"c":"x"}`, 0, OK},
		{"spaces", " \n[ 1 , true , false ] \t", 0, OK},
		{"empty", "", 0, Invalid},
		{"two values", `{} {}`, 0, Invalid},
		{"trailing comma", `[1,]`, 0, Invalid},
		{"bad escape", `"\x"`, 0, Invalid},
		{"depth at limit", strings.Repeat("[", 3) + strings.Repeat("]", 3), 3, OK},
		{"depth over limit", strings.Repeat("[", 4) + strings.Repeat("]", 4), 3, TooDeep},
		{"unclosed bomb", strings.Repeat("[", 6<<20), 64, TooDeep},
		{"unclosed bomb default depth", strings.Repeat(`{"a":`, 1<<20), 0, TooDeep},
		{"invalid before deep", `[x` + strings.Repeat("[", 100), 64, Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, off := Check(tt.in, tt.depth); got != tt.want {
				t.Errorf("Check(%.40q, %d) = %d at %d; want %d", tt.in, tt.depth, got, off, tt.want)
			}
		})
	}
}

// FuzzValid checks that Valid agrees with encoding/json's json.Valid.
func FuzzValid(f *testing.F) {
	for _, s := range []string{`{}`, `[1,{"a":"\u00e9"}]`, `-0.5e+3`, `"\ud800"`, "[" + strings.Repeat("[", 10001), `{"a":1,}`, "\"\x01\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Valid(s), json.Valid([]byte(s)); got != want {
			t.Fatalf("Valid(%q) = %v; json.Valid says %v", s, got, want)
		}
	})
}
