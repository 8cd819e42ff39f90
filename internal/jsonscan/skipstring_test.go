package jsonscan

import (
	"strings"
	"testing"
)

// skipStringBytewise is the definition skipString implements: each
// backslash escapes the byte after it, and the first unescaped quote ends
// the string.
func skipStringBytewise(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '"':
			return j + 1
		case '\\':
			j++
		}
	}
	return -1
}

var skipStringCases = []string{
	`""`, `"a"`, `"a\"b"`, `"a\\"b`, `"a\\\"b"`, `"a\\\\"`, `"\\"`, `"\"`, `"\`, `"`, `"abc`,
	`"x\u0022y"`, `"\\\\\\\\\"\\"`, `"` + strings.Repeat(`plain \"words\" `, 40) + `"tail`,
	`"` + strings.Repeat("a", 1000) + `\\"x`, `"é\"ü"`,
}

func TestSkipString(t *testing.T) {
	for _, s := range skipStringCases {
		if got, want := skipString(s, 0), skipStringBytewise(s, 0); got != want {
			t.Errorf("skipString(%q) = %d; want %d", s, got, want)
		}
		if got, want := skipString([]byte(s), 0), skipStringBytewise(s, 0); got != want {
			t.Errorf("skipString([]byte(%q)) = %d; want %d", s, got, want)
		}
	}
}

func FuzzSkipString(f *testing.F) {
	for _, s := range skipStringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		s = `"` + s
		if got, want := skipString(s, 0), skipStringBytewise(s, 0); got != want {
			t.Errorf("skipString(%q) = %d; want %d", s, got, want)
		}
	})
}

// BenchmarkSkipString skips a 64 KB string of prose and one of JSON text
// (an escaped quote every few bytes):
//
//	go test ./internal/jsonscan -run '^$' -bench SkipString -count 6
func BenchmarkSkipString(b *testing.B) {
	for _, tt := range []struct{ name, unit string }{
		{"prose", "the parcel left the depot and is on its way to the customer "},
		{"json", `{\"answer\":\"yes\",\"n\":1},`},
	} {
		s := []byte(`"` + strings.Repeat(tt.unit, 64<<10/len(tt.unit)) + `"`)
		b.Run(tt.name, func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				if skipString(s, 0) != len(s) {
					b.Fatal("wrong end")
				}
			}
		})
	}
}
