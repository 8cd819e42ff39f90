package jsonstr

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzAppend: Append writes byte for byte what the byte-at-a-time
// reference writes.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{
		"", "plain text", `a"b\c`, "tab\there\nnew", "\x00\x01\x1f\x7f", "é ü 日本", "\u2028\u2029x", "\xff\xfe", "\xe2\x80",
		strings.Repeat("abcdefg\"", 9), strings.Repeat("x", 63) + "\n", "12345678\u00e912345678", "[EMAIL] at 12:30",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Append([]byte("x"), s), referenceAppend([]byte("x"), s); !bytes.Equal(got, want) {
			t.Fatalf("Append(%q) = %q; the byte-at-a-time reference writes %q", s, got, want)
		}
	})
}

func TestSWARSpecial(t *testing.T) {
	for c := range 256 {
		for pos := range 8 {
			w := []byte("abcdefgh")
			w[pos] = byte(c)
			got := swarSpecial(load8(string(w), 0)) != 0
			if want := !jsonPlain[c]; got != want {
				t.Fatalf("swarSpecial(%q) = %v; want %v", w, got, want)
			}
		}
	}
}
