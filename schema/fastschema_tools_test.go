package schema

import (
	"maps"
	"slices"
	"testing"
)

// withoutFast returns ct with every direct validator removed: the path
// before issue 15.
func withoutFast(ct Contract) Contract {
	ct.routeFast, ct.formatFast = nil, nil
	if ct.tools != nil {
		ts := &toolSet{byName: maps.Clone(ct.tools.byName)}
		for k, d := range ts.byName {
			c := *d
			c.fast = nil
			ts.byName[k] = &c
		}
		ct.tools = ts
	}
	return ct
}

// TestFastArgsSameVerdict: tool arguments judged with the direct
// validators get the verdict and reasons they got by decoding, for
// wrappers of every shape wrapper knows, repeated and escaped names,
// strings holding JSON and arguments the parameters refuse.
func TestFastArgsSameVerdict(t *testing.T) {
	ct, slow := argsContracts(t)
	if ct.tools.byName["lookup"].fast == nil {
		t.Fatal("lookup's parameters have no direct validator")
	}
	if !fastArgs([]byte(`{"order":"1234-5678","qty":2}`), ct.tools.byName["lookup"]) {
		t.Fatal("fastArgs refused passing arguments: the direct path is not taken")
	}
	for _, a := range fastArgsCorpus {
		sameArgsVerdict(t, ct, slow, a)
	}
}

// argsContracts is a contract with three tools (one whose parameters
// declare "name" and "arguments"), with and without direct validators.
func argsContracts(t testing.TB) (fast, slow Contract) {
	const lookup = `{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"order":{"type":"string","pattern":"^[0-9]{4}-[0-9]{4}$"},"qty":{"type":"integer","minimum":1}},"required":["order"],"additionalProperties":false}}}`
	const named = `{"type":"function","function":{"name":"named","parameters":{"type":"object","properties":{"name":{"type":"string"},"arguments":{"type":"object"}}}}}`
	const open = `{"type":"function","function":{"name":"open","parameters":{"type":"object"}}}`
	req, err := ParseChatRequest(chatBody(`"tools":[` + lookup + `,` + named + `,` + open + `]`))
	if err != nil {
		t.Fatal(err)
	}
	ct, err := NewContracts(16).Prepare(nil, &req)
	if err != nil {
		t.Fatal(err)
	}
	return ct, withoutFast(ct)
}

func sameArgsVerdict(t testing.TB, ct, slow Contract, a string) {
	for _, fn := range []string{"lookup", "named", "open"} {
		body := reply{calls: []call{{fn, a}}, finish: "tool_calls"}.body()
		got, want := ct.CheckMessage(body), slow.CheckMessage(body)
		if got.Result != want.Result || !slices.Equal(got.Reasons, want.Reasons) {
			t.Fatalf("%s(%s): verdict %v with the direct validator, %v by decoding", fn, a, got, want)
		}
	}
}

// FuzzFastArgs: tool arguments get the same verdict and reasons with the
// direct validators as by decoding.
//
//	go test ./schema -run '^$' -fuzz FuzzFastArgs -fuzztime 3m
func FuzzFastArgs(f *testing.F) {
	for _, a := range fastArgsCorpus {
		f.Add(a)
	}
	ct, slow := argsContracts(f)
	f.Fuzz(func(t *testing.T, a string) {
		sameArgsVerdict(t, ct, slow, a)
	})
}

var fastArgsCorpus = []string{
	`{"order":"1234-5678"}`, `{"order":"1234-5678","qty":2.0}`, `{"order":"1234-5678","qty":0}`,
	`{"order":"12345678"}`, `{"qty":1}`, `{"order":"1234-5678","extra":true}`, ` {"order":"1234-5678"} `,
	`{"order":"1234-5678","order":"x"}`, `{"order":"x","order":"1234-5678"}`, `{"\u006frder":"1234-5678"}`,
	`{"arguments":{"order":"1234-5678"}}`, `{"arguments":"{\"order\":\"1234-5678\"}"}`, `{"arguments":"[not json"}`,
	`{"lookup":{"order":"1"}}`, `{"input":{}}`, `{"function":"plain"}`, `{"name":"lookup","arguments":{"order":"1"}}`,
	`{"name":"lookup","parameters":"{}"}`, `{"name":1,"arguments":{}}`, `{"a":1,"b":2,"c":3}`, `{}`, `[]`, `"{}"`, `1`,
	`{"order":"1234-5678"`, `{"order":"1234-5678"} {}`, "{\"\xff\":{}}",
	`{"name":"x","arguments":{}}`, `{"arguments":{}}`, `{"name":"x","arguments":"{}"}`,
	`{"arguments":"\u007b\"order\":\"1234-5678\"}"}`, `{"arguments":" \n{}"}`, `{"input":"plain text"}`,
}

// TestFastSchemaSameReasons: a reply that fails a route or response_format
// schema gets the reasons it got before the direct validator.
func TestFastSchemaSameReasons(t *testing.T) {
	for _, extra := range []string{`"response_format":{"type":"json_object"}`, `"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + routeSchema + `}}`} {
		req, err := ParseChatRequest(chatBody(extra))
		if err != nil {
			t.Fatal(err)
		}
		ct, err := NewContracts(16).Prepare(mustCompile(t, routeSchema), &req)
		if err != nil {
			t.Fatal(err)
		}
		if ct.routeFast == nil {
			t.Fatal("the route schema has no direct validator")
		}
		slow := withoutFast(ct)
		for _, c := range []string{
			`{"answer":"a","confidence":0.5}`, `{"answer":"a"}`, `{"answer":1,"confidence":2}`, `{"answer":"a","confidence":1.0000000000000001}`,
			`{"answer":"a","answer":"b","confidence":0}`, `[1]`, `"x"`, ``, "```json\n{}\n```", `{"answer":"a","confidence":1e400}`,
			`{"answer":"\ud800","confidence":-0}`,
		} {
			body := reply{content: str(c)}.body()
			got, want := ct.CheckMessage(body), slow.CheckMessage(body)
			if got.Result != want.Result || !slices.Equal(got.Reasons, want.Reasons) {
				t.Errorf("content %s: verdict %v with the direct validator, %v before", c, got, want)
			}
		}
	}
}
