//go:build !race

package schema

import "testing"

// TestReplyAllocs: the reply path of a json_object contract without a
// schema scans the content instead of decoding it into any (issue 15: it
// cost 13 allocations per reply, a quarter of the gateway's), and the
// usage and response ID come from the same pass.
func TestReplyAllocs(t *testing.T) {
	req, err := ParseChatRequest(chatBody(`"response_format":{"type":"json_object"}`))
	if err != nil {
		t.Fatal(err)
	}
	ct, err := NewContracts(8).Prepare(nil, &req)
	if err != nil {
		t.Fatal(err)
	}
	body := typicalReply()
	if v := ct.CheckMessage(body); v.Result != ResultPass {
		t.Fatalf("CheckMessage(typical reply) = %+v; want pass", v)
	}
	tests := []struct {
		name string
		f    func()
	}{
		{"CheckMessage json_object", func() { sinkVerdict = ct.CheckMessage(body) }},
		{"ReadReply + CheckReply json_object", func() {
			r := ReadReply(body)
			sinkVerdict = ct.CheckReply(body, &r)
		}},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(200, tt.f); n > 0 {
			t.Errorf("%s: %v allocs/op; want 0", tt.name, n)
		}
	}
}
