package schema

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/cairnhq/cairn/internal/jsonscan"
)

// decodeStd is what decodeValid replaces: encoding/json's Decoder with
// UseNumber.
func decodeStd(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

var decodeSeeds = []string{
	`{}`, `[]`, `""`, `0`, `-1.5e+10`, `true`, `false`, `null`,
	` {"a" : [1, {"b":null}, "x"] , "c":{"d":[]}} `,
	`{"answer":"He said \"hi\"\n\tthen left \\ \/ \u00e9\ud83d\ude00","confidence":0.82}`,
	`{"lone":"\ud800x","pair":"\ud83d\ude00","bad":"\uZZZZ"}`,
	"{\"raw\":\"caf\xc3\xa9 \xff\xfe end\"}",
	`{"a":1,"a":2}`,
	`[[[[[[1]]]]],{"k":[{"l":{}}]}]`,
	`{"n":[0,-0,1e5,1E-5,123456789012345678901234567890]}`,
}

// TestDecodeValid: one-pass decoding gives what the Decoder gives.
func TestDecodeValid(t *testing.T) {
	for _, in := range decodeSeeds {
		checkDecode(t, in)
	}
}

func checkDecode(t *testing.T, in string) {
	t.Helper()
	b := []byte(in)
	if res, _ := jsonscan.Check(b, MaxValueDepth); res != jsonscan.OK {
		return // decodeValid is only called on what the scan accepted
	}
	want, err := decodeStd(b)
	if err != nil {
		t.Fatalf("encoding/json refused %q, which jsonscan accepted: %v", in, err)
	}
	if got := decodeValid(b); !reflect.DeepEqual(got, want) {
		t.Errorf("decodeValid(%q) = %#v; want %#v", in, got, want)
	}
}

func FuzzDecodeValid(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkDecode(t, in)
	})
}
