package capture

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
)

// appendRecord appends r as one JSON line (ending in '\n'), the same
// document encoding/json's Encoder with SetEscapeHTML(false) writes for a
// Record, without reflection and without re-validating and compacting
// Request and Response: the masker produces them compact and valid. It
// differs from encoding/json only where that would fail and lose the
// record: a received_at whose year is outside 0–9999 is written as the zero
// time, and a NaN or infinite float as 0.
func appendRecord(b []byte, r *Record) []byte {
	b = append(b, `{"gateway_request_id":`...)
	b = appendJSONString(b, r.GatewayRequestID)
	b = appendStringField(b, "provider_request_id", r.ProviderRequestID)
	b = appendStringField(b, "client_request_id", r.ClientRequestID)
	b = appendStringField(b, "client_request_id_hash", r.ClientRequestIDHash)
	b = appendStringField(b, "trace_id", r.TraceID)
	b = append(b, `,"received_at":"`...)
	t := r.ReceivedAt
	if y := t.Year(); y < 0 || y > 9999 {
		t = time.Time{}
	}
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendStringField(b, "key", r.Key)
	b = appendStringField(b, "client", r.Client)
	b = append(b, `,"endpoint":`...)
	b = appendJSONString(b, r.Endpoint)
	b = appendStringField(b, "route", r.Route)
	b = appendStringField(b, "cohort", r.Cohort)
	b = appendStringField(b, "provider", r.Provider)
	b = appendStringField(b, "model", r.Model)
	b = appendStringField(b, "target", r.Target)
	b = appendStringField(b, "requested_model", r.RequestedModel)
	b = appendStringField(b, "prompt_version", r.PromptVersion)
	if len(r.Flags) > 0 {
		b = append(b, `,"flags":`...)
		b = appendAnyMap(b, r.Flags)
	}
	b = appendStringField(b, "release", r.Release)
	b = appendStringField(b, "config_revision", r.ConfigRevision)

	p := &r.Params
	b = append(b, `,"params":{"stream":`...)
	b = strconv.AppendBool(b, p.Stream)
	if p.Temperature != nil {
		b = append(b, `,"temperature":`...)
		b = appendFloat(b, *p.Temperature)
	}
	b = appendIntField(b, "max_tokens", p.MaxTokens)
	b = appendStringField(b, "response_format", p.ResponseFormat)
	b = appendIntField(b, "tools", p.Tools)
	b = append(b, '}')
	b = appendStringField(b, "user_hash", r.UserHash)

	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"outcome":`...)
	b = appendJSONString(b, r.Outcome)
	b = appendStringField(b, "error", r.Error)
	if len(r.Attempts) > 0 {
		b = append(b, `,"attempts":[`...)
		for i := range r.Attempts {
			a := &r.Attempts[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"provider":`...)
			b = appendJSONString(b, a.Provider)
			b = append(b, `,"model":`...)
			b = appendJSONString(b, a.Model)
			b = appendStringField(b, "target", a.Target)
			b = appendStringField(b, "cohort", a.Cohort)
			b = append(b, `,"status":`...)
			b = strconv.AppendInt(b, int64(a.Status), 10)
			b = appendStringField(b, "provider_request_id", a.ProviderRequestID)
			b = append(b, `,"latency_ms":`...)
			b = appendFloat(b, a.LatencyMS)
			b = appendStringField(b, "error", a.Error)
			b = appendStringField(b, "contract", a.Contract)
			if a.DiscardedTokens != 0 {
				b = append(b, `,"discarded_tokens":`...)
				b = strconv.AppendInt(b, int64(a.DiscardedTokens), 10)
			}
			if a.EstimatedTokens != 0 {
				b = append(b, `,"estimated_tokens":`...)
				b = strconv.AppendInt(b, int64(a.EstimatedTokens), 10)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}

	b = append(b, `,"latency_ms":`...)
	b = appendFloat(b, r.LatencyMS)
	if r.TTFTMS != 0 {
		b = append(b, `,"ttft_ms":`...)
		b = appendFloat(b, r.TTFTMS)
	}
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(r.Usage.PromptTokens), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(r.Usage.CompletionTokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(r.Usage.TotalTokens), 10)
	if r.Usage.CachedTokens != 0 {
		b = append(b, `,"cached_tokens":`...)
		b = strconv.AppendInt(b, int64(r.Usage.CachedTokens), 10)
	}
	b = append(b, `},"cost_usd":`...)
	if r.CostUSD != nil {
		b = appendFloat(b, *r.CostUSD)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"contract":{"verdict":`...)
	b = appendJSONString(b, r.Contract.Verdict)
	if len(r.Contract.Reasons) > 0 {
		b = append(b, `,"reasons":[`...)
		for i, s := range r.Contract.Reasons {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		b = append(b, ']')
	}
	b = append(b, '}')
	if r.Refusal {
		b = append(b, `,"refusal":true`...)
	}
	if len(r.PIILeak) > 0 {
		b = append(b, `,"pii_leak":[`...)
		for i, s := range r.PIILeak {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		b = append(b, ']')
	}
	if len(r.Request) > 0 {
		b = append(b, `,"request":`...)
		b = append(b, r.Request...)
	}
	if len(r.Response) > 0 {
		b = append(b, `,"response":`...)
		b = append(b, r.Response...)
	}
	if len(r.Headers) > 0 {
		b = append(b, `,"headers":{`...)
		keys := make([]string, 0, len(r.Headers))
		for k := range r.Headers {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, r.Headers[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"body_sampled":`...)
	b = strconv.AppendBool(b, r.BodySampled)
	return append(b, '}', '\n')
}

func appendStringField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendJSONString(b, v)
}

func appendIntField(b []byte, name string, v int) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, int64(v), 10)
}

// appendFloat formats f as encoding/json does (ES6 number formatting);
// NaN and infinities, which encoding/json refuses, become 0.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendAnyMap appends a map of route flags with sorted keys. Scalar
// values are written directly; anything else goes through encoding/json
// (HTML not escaped, as in the rest of the record).
func appendAnyMap(b []byte, m map[string]any) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendAny(b, m[k])
	}
	return append(b, '}')
}

func appendAny(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendJSONString(b, x)
	case bool:
		return strconv.AppendBool(b, x)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case float64:
		return appendFloat(b, x)
	case map[string]any:
		return appendAnyMap(b, x)
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendAny(b, e)
		}
		return append(b, ']')
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return append(b, "null"...)
	}
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}
