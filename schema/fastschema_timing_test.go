package schema

import "testing"

// BenchmarkContractSchema judges a typical reply against a route schema
// (a json_object request, as the proxy benchmarks send) both ways in one
// run: "library" is the path before issue 15's direct validator (the
// content decoded into any, then jsonschema's Validate), "direct" walks
// the raw bytes; "json_object" is the same request without a route
// schema, the floor of both. Compare them with
//
//	go test ./schema -run '^$' -bench ContractSchema -count 6
func BenchmarkContractSchema(b *testing.B) {
	req, err := ParseChatRequest(chatBody(`"response_format":{"type":"json_object"}`))
	if err != nil {
		b.Fatal(err)
	}
	ct, err := NewContracts(16).Prepare(mustCompile(b, routeSchema), &req)
	if err != nil {
		b.Fatal(err)
	}
	if ct.routeFast == nil {
		b.Fatal("the route schema has no direct validator")
	}
	lib := ct
	lib.routeFast = nil // the library alone, as before
	noSchema, err := NewContracts(16).Prepare(nil, &req)
	if err != nil {
		b.Fatal(err)
	}
	body := typicalReply()
	// "json_object" (no route schema: reading the reply and one validity
	// scan) is the floor both others include.
	for _, bc := range []struct {
		name string
		ct   Contract
	}{{"json_object", noSchema}, {"library", lib}, {"direct", ct}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				sinkVerdict = bc.ct.CheckMessage(body)
			}
			if sinkVerdict.Result != ResultPass {
				b.Fatalf("verdict %v", sinkVerdict)
			}
		})
	}
}

// BenchmarkContractTools is BenchmarkContractSchema for a streamed reply
// with one tool call judged against the tool's parameters.
func BenchmarkContractTools(b *testing.B) {
	req, err := ParseChatRequest(chatBody(`"tools":[` + weatherTool + `]`))
	if err != nil {
		b.Fatal(err)
	}
	ct, err := NewContracts(16).Prepare(nil, &req)
	if err != nil {
		b.Fatal(err)
	}
	a := accumulate(b, reply{calls: []call{{"get_weather", `{"city":"Paris","confidence":0.8}`}}, finish: "tool_calls"}.stream())
	for _, bc := range []struct {
		name string
		ct   Contract
	}{{"library", withoutFast(ct)}, {"direct", ct}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkVerdict = bc.ct.CheckStream(a)
			}
			if sinkVerdict.Result != ResultPass {
				b.Fatalf("verdict %v", sinkVerdict)
			}
		})
	}
}

// BenchmarkSchemaValidate is the schema check alone on a typical content
// (already read from the reply): decoding into any and jsonschema's
// Validate ("library") against the direct validator ("direct").
//
//	go test ./schema -run '^$' -bench SchemaValidate -count 6
func BenchmarkSchemaValidate(b *testing.B) {
	s := mustCompile(b, routeSchema)
	fs := newFastSchema(s)
	content := []byte(`{"answer":"Your refund of $89.90 has been issued to the original card. It usually appears on your statement within 5-7 business days.","confidence":0.93}`)
	b.Run("library", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(content)))
		for b.Loop() {
			var r reasons
			validate(s, decodeValid(content), "", &r)
			if len(r.list) > 0 {
				b.Fatal(r.list)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(content)))
		for b.Loop() {
			if fs.check(content) != fastPass {
				b.Fatal("not passed")
			}
		}
	})
}
