//go:build !race

package schema

import "testing"

// TestContractSchemaAllocs: judging a passing reply against a route schema
// allocates nothing beyond reading the reply (issue 15: the content was
// decoded into any and validated by jsonschema/v5, 43 allocations).
func TestContractSchemaAllocs(t *testing.T) {
	req, err := ParseChatRequest(chatBody(`"response_format":{"type":"json_object"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, schema, content string }{
		{"route", routeSchema, `{"answer":"Refunds take 5\u20137 days.\nThanks!","confidence":0.93}`},
		{"nested", `{"type":"object","required":["items"],"additionalProperties":false,"properties":{"items":{"type":"array","minItems":1,"items":{"$ref":"#/$defs/item"}},"note":{"type":["string","null"],"maxLength":200}},"$defs":{"item":{"type":"object","required":["sku","qty"],"properties":{"sku":{"type":"string","pattern":"^[A-Z]{3}-\\d+$"},"qty":{"type":"integer","minimum":1},"kind":{"enum":["new","used"]}}}}}`,
			`{"items":[{"sku":"ABC-12","qty":2,"kind":"new"},{"sku":"XYZ-9","qty":1.0}],"note":null}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ct, err := NewContracts(16).Prepare(mustCompile(t, tt.schema), &req)
			if err != nil {
				t.Fatal(err)
			}
			body := reply{content: str(tt.content)}.body()
			r := ReadReply(body)
			if v := ct.CheckReply(body, &r); v.Result != ResultPass {
				t.Fatalf("verdict %v", v)
			}
			if n := testing.AllocsPerRun(200, func() { sinkVerdict = ct.CheckReply(body, &r) }); n > 0 {
				t.Errorf("CheckReply allocates %.1f times; want 0", n)
			}
		})
	}
}
