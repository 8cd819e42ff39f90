package schema

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update once to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s:\n%s\nwant\n%s", name, p, got, want)
	}
}

func TestAppendErrorGolden(t *testing.T) {
	var b []byte
	b = AppendError(b, "you must provide a model parameter", "invalid_request_error", "model", "")
	b = append(b, '\n')
	b = AppendError(b, `model "gpt-5" not found`, "invalid_request_error", "", "model_not_found")
	b = append(b, '\n')
	b = AppendError(b, "contract_violation: /confidence: missing property\nline\t2 \\ \x00\x1f \u2028\u2029 <&> é 😀 bad:\xff\xfe", "server_error", "", "contract_violation")
	b = append(b, '\n')
	b = AppendSSEError(b, "upstream stream broke", "server_error", "upstream_error")
	golden(t, "errors", b)
}

func TestAppendErrorDecodes(t *testing.T) {
	tests := []struct{ msg, typ, param, code string }{
		{"m", "t", "", ""},
		{"quote \" backslash \\ slash /", "invalid_request_error", "messages[0].role", "c"},
		{"ctl \x00\x01\b\f\n\r\t\x7f", "t", "p", "c"},
		{"utf8 é 日本 😀 \u2028", "t", "", "c"},
	}
	for _, tt := range tests {
		got := AppendError(nil, tt.msg, tt.typ, tt.param, tt.code)
		var v struct {
			Error struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Param   *string `json:"param"`
				Code    *string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(got, &v); err != nil {
			t.Fatalf("AppendError(%q) = %s: %v", tt.msg, got, err)
		}
		e := v.Error
		if e.Message != tt.msg || e.Type != tt.typ || (e.Param == nil) != (tt.param == "") || (e.Code == nil) != (tt.code == "") {
			t.Errorf("AppendError(%q, %q, %q, %q) = %s", tt.msg, tt.typ, tt.param, tt.code, got)
		}
		if e.Param != nil && *e.Param != tt.param || e.Code != nil && *e.Code != tt.code {
			t.Errorf("AppendError(%q, %q, %q, %q) = %s", tt.msg, tt.typ, tt.param, tt.code, got)
		}
	}
	sse := AppendSSEError(nil, "x", "server_error", "upstream_error")
	if !strings.HasPrefix(string(sse), "data: {") || !strings.HasSuffix(string(sse), "}\n\n") || !json.Valid(sse[6:len(sse)-2]) {
		t.Errorf("AppendSSEError = %q", sse)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "\"\\/\n", "\xff\xfe", "é😀\u2028", "\x00\x1f\x7f", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("appendJSONString(%q) = %s: %v", s, got, err)
		}
		// encoding/json replaces invalid UTF-8 the same way.
		want, _ := json.Marshal(s)
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Fatalf("appendJSONString(%q) decodes to %q; want %q", s, back, wantBack)
		}
	})
}
