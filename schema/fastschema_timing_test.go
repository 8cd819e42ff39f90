package schema

import "testing"

// BenchmarkContractSchema judges a typical reply against a route schema
// (a json_object request, as the proxy benchmarks send) both ways in one
// run: "library" is the path before issue 15's direct validator (the
// content decoded into any, then jsonschema's Validate), "direct" walks
// the raw bytes. Compare them with
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
	body := typicalReply()
	for _, bc := range []struct {
		name string
		ct   Contract
	}{{"library", lib}, {"direct", ct}} {
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
