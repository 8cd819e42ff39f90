package jsonscan

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestCheckUTF8 compares the one-pass check with what it replaces,
// utf8.Valid then json.Valid, on strings whose special bytes (quote,
// backslash, control, non-ASCII, invalid UTF-8) fall at every offset of
// the eight-byte words the scan reads at once.
func TestCheckUTF8(t *testing.T) {
	specials := []string{`"`, `\\`, `\"`, "\x01", "\n", "é", "€", "😀", "\xff", "\xc3", "\xed\xa0\x80", "\xe2\x82", `\u00e9`, `\x`}
	n := 0
	for pad := 0; pad < 17; pad++ {
		for _, sp := range specials {
			for tail := 0; tail < 9; tail++ {
				in := `{"k` + strings.Repeat("a", pad) + `":"` + strings.Repeat("b", pad) + sp + strings.Repeat("c", tail) + `"}`
				check1(t, in)
				n++
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", " ", `"`, `\`, "\x1f", "é", "\xff", "{", "}", "[", "]", ":", ",", "1", "\x80"}
	for range 20000 {
		var b strings.Builder
		b.WriteString(`["`)
		for k := r.IntN(40); k > 0; k-- {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		b.WriteString(`"]`)
		check1(t, b.String())
	}
}

func check1(t *testing.T, in string) {
	t.Helper()
	want := json.Valid([]byte(in)) && utf8.ValidString(in)
	res, _ := CheckUTF8(in, 0)
	if (res == OK) != want {
		t.Fatalf("CheckUTF8(%q) = %v; want ok=%v", in, res, want)
	}
	if res == InvalidUTF8 && utf8.ValidString(in) {
		t.Fatalf("CheckUTF8(%q) = InvalidUTF8 for valid UTF-8", in)
	}
	lenient, _ := Check([]byte(in), 0)
	if (lenient == OK) != json.Valid([]byte(in)) {
		t.Fatalf("Check(%q) = %v; json.Valid = %v", in, lenient, json.Valid([]byte(in)))
	}
}

func FuzzCheckUTF8(f *testing.F) {
	f.Add(`{"a":"é\u00e9"}`)
	f.Add("[\"\xff\"]")
	f.Fuzz(func(t *testing.T, in string) {
		check1(t, in)
	})
}
