package schema

import (
	"bytes"
	"testing"
)

// The readers the gateway runs on every non-streaming chat request and
// reply (issue 15), on the bodies of proxy's BenchmarkHotPath:
//
//	go test ./schema -run '^$' -bench 'HotReaders' -benchmem -count 6

var (
	hotReqBody   = []byte(`{"model":"support-bot","messages":[{"role":"system","content":"You are a support assistant for an online store. Answer in JSON with the fields answer and confidence. Be brief and precise; never invent order numbers."},{"role":"user","content":"Hello! I ordered a pair of running shoes last Tuesday and the tracking page has not changed since Thursday. Can you tell me whether the parcel is lost, and what my options are for a refund or a replacement? My e-mail is jane.doe@example.com."}],"response_format":{"type":"json_object"},"temperature":0.2,"max_tokens":256,"user":"user-17"}`)
	hotReplyBody = []byte(`{"id":"chatcmpl-hot","object":"chat.completion","created":1764000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"{\"answer\":\"Your parcel is delayed, not lost: carriers often pause tracking updates over weekends. If nothing changes by Friday you can choose a refund or a replacement.\",\"confidence\":0.82}","refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":112,"completion_tokens":41,"total_tokens":153}}`)
	hotPatterns  = []string{"I'm sorry, but I can't", "I cannot help with", "I can't assist with", "I'm unable to provide", "As an AI language model, I can't"}
	sinkBool     bool
	sinkReply    Reply
)

func BenchmarkHotReaders(b *testing.B) {
	b.Run("ParseChatRequest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseChatRequest(hotReqBody); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ReadReply", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkReply = ReadReply(hotReplyBody)
		}
	})
	b.Run("RefusalsMessage", func(b *testing.B) {
		r := NewRefusals(hotPatterns)
		b.ReportAllocs()
		for b.Loop() {
			sinkBool = r.Message(hotReplyBody)
		}
	})
	b.Run("RefusalsReply", func(b *testing.B) {
		r := NewRefusals(hotPatterns)
		rp := ReadReply(hotReplyBody)
		b.ReportAllocs()
		for b.Loop() {
			sinkBool = r.Reply(hotReplyBody, &rp)
		}
	})
}

// BenchmarkHotReadersLarge judges a 256 KB plain-prose reply (issue 15's
// per-KB figure):
//
//	go test ./schema -run '^$' -bench 'HotReadersLarge' -benchmem -count 6
func BenchmarkHotReadersLarge(b *testing.B) {
	pad := bytes.Repeat([]byte("the parcel left the depot and is on its way to the customer who asked about delivery options and refunds "), 256<<10/106)
	body := bytes.Replace(hotReplyBody, []byte(`Your parcel is delayed`), append(pad, `Your parcel is delayed`...), 1)
	r := NewRefusals(hotPatterns)
	rp := ReadReply(body)
	b.Run("ReadReply", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			sinkReply = ReadReply(body)
		}
	})
	b.Run("RefusalsMessage", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			sinkBool = r.Message(body)
		}
	})
	b.Run("RefusalsReply", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			sinkBool = r.Reply(body, &rp)
		}
	})
}
