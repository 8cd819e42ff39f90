package schema

import "testing"

// BenchmarkReplyCheck compares reading and judging a non-streamed answer
// of each API (json_object contract): a chat.completion with ReadReply +
// CheckReply, a Responses object with AddResponseBody + CheckStream.
//
//	go test ./schema -run '^$' -bench ReplyCheck -benchmem
func BenchmarkReplyCheck(b *testing.B) {
	chat := []byte(`{"id":"chatcmpl-mock1","object":"chat.completion","created":1756000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"{\"answer\":\"ok\",\"confidence\":0.9}","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":57,"completion_tokens":8,"total_tokens":65}}`)
	resp := []byte(`{"id":"resp_mock1","object":"response","created_at":1756000000,"status":"completed","error":null,"incomplete_details":null,"instructions":"You are a helpful assistant.","model":"gpt-4o-mini","output":[{"type":"message","id":"msg_mock1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"{\"answer\":\"ok\",\"confidence\":0.9}","annotations":[]}]}],"parallel_tool_calls":true,"previous_response_id":null,"store":true,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","metadata":{},"usage":{"input_tokens":57,"input_tokens_details":{"cached_tokens":0},"output_tokens":8,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":65}}`)
	cs := NewContracts(4)
	chatReq, _ := ParseChatRequest([]byte(`{"model":"a","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}`))
	respReq, _ := ParseResponsesRequest([]byte(`{"model":"a","input":"x","text":{"format":{"type":"json_object"}}}`))
	cc, _ := cs.Prepare(nil, &chatReq)
	rc, _ := cs.Prepare(nil, &respReq)
	b.Run("api=chat", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(chat)))
		for b.Loop() {
			r := ReadReply(chat)
			if cc.CheckReply(chat, &r).Result != ResultPass {
				b.Fatal("fail")
			}
		}
	})
	b.Run("api=responses", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(resp)))
		var a StreamAccumulator
		for b.Loop() {
			r := ReadReply(resp)
			_ = r
			a.Reset()
			a.ForResponses()
			a.AddResponseBody(resp)
			if rc.CheckStream(&a).Result != ResultPass {
				b.Fatal("fail")
			}
		}
	})
}
