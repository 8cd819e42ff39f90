package capture

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// plainRecord is Record without its MarshalJSON method, so that
// encoding/json encodes it by reflection over the struct tags.
type plainRecord Record

// encodeStd is how the writer encoded records before appendRecord.
func encodeStd(t *testing.T, r *Record) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode((*plainRecord)(r)); err != nil {
		t.Fatalf("json encode: %v", err)
	}
	return b.String()
}

func TestAppendRecordMatchesEncodingJSON(t *testing.T) {
	temp, tiny := 0.7, 1e-7
	full := proxyRecord(7, nil, nil)
	full.Raw = nil
	full.Flags = map[string]any{"b": true, "s": "x<y>&z", "n": 3.0, "big": 1e21, "nil": nil, "list": []any{1.5, "a", false},
		"nested": map[string]any{"k": "v"}, "i": 42, "strs": []string{"p", "q"}}
	full.Error = "bad \"quote\" \\ \n\t\r\b\f \x01 \u2028 \xff <html>&"
	full.TTFTMS = 12.5
	full.Contract = Verdict{Verdict: VerdictFail, Reasons: []string{"/a: x", "é"}}
	full.Request = json.RawMessage(`[{"role":"user","content":"hi"}]`)
	full.Response = json.RawMessage(`{"content":"ho","finish_reason":"stop"}`)
	full.Headers = map[string]string{"user-agent": "ua", "content-type": "application/json", "accept": "*/*"}
	full.BodySampled = true
	full.Refusal = true
	full.PIILeak = []string{"email", "kz_iin"}
	full.Params.Tools = 2
	full.UserHash = "uh_0123456789abcdef0123456789abcdef"
	full.Attempts = append(full.Attempts, Attempt{Provider: "b", Model: "m", Status: 0, LatencyMS: tiny, Error: "dial"},
		Attempt{Provider: "c", Model: "m", Status: 200, DiscardedTokens: 7, EstimatedTokens: 9})

	tests := []struct {
		name string
		r    *Record
	}{
		{"minimal", &Record{GatewayRequestID: "gw", Endpoint: "models", ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}},
		{"test record", func() *Record { r := testRecord(3); r.Raw = nil; return r }()},
		{"full", full},
		{"floats", &Record{GatewayRequestID: "gw", LatencyMS: 123456789012345678901234.0, TTFTMS: 0.000001, Params: Params{Temperature: &temp},
			ReceivedAt: time.Date(2026, 11, 24, 10, 0, 0, 123456789, time.UTC)}},
		{"zero temperature", &Record{GatewayRequestID: "gw", Params: Params{Temperature: new(float64)}}},
		{"negative", &Record{GatewayRequestID: "gw", LatencyMS: -1.25, Status: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := encodeStd(t, tt.r)
			if got := string(appendRecord(nil, tt.r)); got != want {
				t.Errorf("appendRecord(%s) =\n%s\nwant (encoding/json)\n%s", tt.name, got, want)
			}
		})
	}
}

func TestAppendRecordKeepsUnencodable(t *testing.T) {
	r := &Record{GatewayRequestID: "gw", ReceivedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), LatencyMS: nan()}
	line := appendRecord(nil, r)
	var back Record
	if err := json.Unmarshal(line, &back); err != nil || back.GatewayRequestID != "gw" || !back.ReceivedAt.IsZero() || back.LatencyMS != 0 {
		t.Errorf("appendRecord(unencodable) = %s (%v); want the record with a zero time and latency", line, err)
	}
}

func nan() float64 { var z float64; return z / z }

func FuzzAppendRecordStrings(f *testing.F) {
	f.Add("gw", "x\u2028y", "\xff\xfe", 1.5)
	f.Add("a\"b", "<>&", "\x00\x1f\x7f", 1e-9)
	f.Fuzz(func(t *testing.T, id, e, client string, lat float64) {
		r := &Record{GatewayRequestID: id, Error: e, Client: client, LatencyMS: lat, Headers: map[string]string{client: e}}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if enc.Encode((*plainRecord)(r)) != nil {
			return // NaN or infinity
		}
		if got := string(appendRecord(nil, r)); got != b.String() {
			t.Fatalf("appendRecord = %s; encoding/json %s", got, b.String())
		}
	})
}

// TestRecordMarshalOddNumbers: every encoder of a record goes through
// Record.MarshalJSON, which cannot fail on odd numbers (issue 12.2: an
// infinite temperature made GET /admin/requests/{id} answer 500 and the
// incident holding the record panic).
func TestRecordMarshalOddNumbers(t *testing.T) {
	inf, negInf := math.Inf(1), math.Inf(-1)
	r := Record{GatewayRequestID: "gw", LatencyMS: nan(), TTFTMS: negInf, Params: Params{Temperature: &inf},
		Attempts: []Attempt{{Provider: "p", LatencyMS: inf}}, Flags: map[string]any{"f": nan(), "n": json.Number("9007199254740993")},
		Request: json.RawMessage(`{"not":"one line"`), Response: json.RawMessage("[1,\n2]")}
	for _, tc := range []struct {
		name string
		enc  func(any) ([]byte, error)
	}{
		{"Marshal", json.Marshal},
		{"MarshalIndent", func(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }},
	} {
		for _, v := range []any{r, &r, []Record{r}, map[string]any{"samples": []Record{r}}} {
			b, err := tc.enc(v)
			if err != nil {
				t.Fatalf("%s(%T) failed: %v", tc.name, v, err)
			}
			if !json.Valid(b) {
				t.Fatalf("%s(%T) = invalid JSON %s", tc.name, v, b)
			}
		}
	}
	b, _ := json.Marshal(r)
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	if back.LatencyMS != 0 || *back.Params.Temperature != 0 || back.Attempts[0].LatencyMS != 0 {
		t.Errorf("odd numbers came back as %v %v %v; want 0", back.LatencyMS, *back.Params.Temperature, back.Attempts[0].LatencyMS)
	}
	if string(back.Request) != `"{\"not\":\"one line\""` || !bytes.Contains(b, []byte(`"n":9007199254740993`)) {
		t.Errorf("request %s, line %s; want the broken request as a string and the big flag exact", back.Request, b)
	}
}
