package schema

import (
	"testing"

	"github.com/cairnhq/cairn/internal/jsonscan"
)

// refusalBodies are the bodies TestRefusalsMessage judges, and more.
var refusalBodies = []string{
	`{"choices":[{"index":0,"message":{"role":"assistant","content":"Sure: the refund is on its way."},"finish_reason":"stop"}]}`,
	`{"choices":[{"message":{"role":"assistant","content":null,"refusal":"I can't do that."},"finish_reason":"stop"}]}`,
	`{"choices":[{"message":{"role":"assistant","content":"ok","refusal":null},"finish_reason":"stop"}]}`,
	`{"choices":[{"message":{"role":"assistant","content":"ok","refusal":""},"finish_reason":"stop"}]}`,
	`{"choices":[{"message":{"role":"assistant","content":""},"finish_reason":"content_filter"}]}`,
	`{"choices":[{"finish_reason":"content_filter","message":{"role":"assistant","content":"Sure"}}]}`,
	`{"choices":[{"message":{"content":"I'm sorry, but I can't help with that request."},"finish_reason":"stop"}]}`,
	`{"choices":[{"message":{"content":"\n  i'M SORRY, BUT I CAN'T do it"}}]}`,
	`{"choices":[{"message":{"content":"I’m sorry, but I can’t share that."}}]}`,
	`{"choices":[{"message":{"content":"I\u2019m sorry, but I can\u2019t share that."}}]}`,
	`{"choices":[{"message":{"content":"Here it is. I cannot help with more."}}]}`,
	`{"choices":[{"message":{"content":[{"type":"text","text":"I cannot help with that"}]}}]}`,
	`{"choices":[{"message":{"content":[{"type":"text","text":"Sure"},{"type":"text","text":"I cannot help with that"}]}}]}`,
	`{"choices":[{"message":{"content":[{"type":"image_url"},{"type":"text","text":"I cannot help with that"}]}}]}`,
	`{"choices":[{"message":{"content":["I cannot help with that"]}}]}`,
	"{\n  \"choices\": [{\"message\": {\"content\": \"I cannot help with that\"}}]\n}",
	`{"choices":[{"message":{"content":"I cannot"},"finish_reason":"stop"}]}`,
	`{"choices":[{"message":{"content":"I cannot help with that","content":"Sure"}}]}`,
	`{"choices":[{"message":{"content":"Sure","content":"I cannot help with that"}}]}`,
	`{"choices":[{"message":{"content":"Sure"},"message":{"content":"I cannot help with that"}}]}`,
	`{"choices":[{"message":"I cannot help with that"}]}`,
	`{"choices":[{"message":{"content":7}}]}`,
	`{"choices":[{"message":{"content":"\"I cannot help with that\""}}]}`,
	`{"choices":[{"message":{"content":"**I cannot help with that**"}}]}`,
	`oops`,
	`{"choices":[]}`,
	`{"choices":[{"message":{"content":"I cannot help with th`,
	`{"choices":[{"message":{"content":"I cannot help with that"`,
	`{"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant","content":"` + longContent + `"},"finish_reason":"stop"}]}`,
	`{"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant","content":"I cannot help with that` + longContent + `"},"finish_reason":"stop"}]}`,
	string(hotReplyBody),
}

var longContent = func() string {
	b := make([]byte, 0, 3000)
	for len(b) < 3000 {
		b = append(b, `plain words, \"quoted\" and \u00e9 escaped; `...)
	}
	return string(b)
}()

// TestRefusalsReply: judging from ReadReply's choices[0] gives Message's
// verdicts (issue 15: Message reads the whole body twice).
func TestRefusalsReply(t *testing.T) {
	r := NewRefusals([]string{"I'm sorry, but I can't", "I cannot help with"})
	for _, body := range refusalBodies {
		b := []byte(body)
		rp := ReadReply(b)
		if got, want := r.Reply(b, &rp), r.Message(b); got != want {
			t.Errorf("Reply(%.80s) = %v; Message says %v", body, got, want)
		}
		var none *Refusals
		if got, want := none.Reply(b, &rp), none.Message(b); got != want {
			t.Errorf("nil Refusals: Reply(%.80s) = %v; Message says %v", body, got, want)
		}
	}
}

// TestRefusalsReplyReadsTheMessage: the content judged is choices[0]'s
// message's, not the first "content" key of the body (Message's shortcut).
func TestRefusalsReplyReadsTheMessage(t *testing.T) {
	r := NewRefusals([]string{"I cannot help with"})
	for _, tt := range []struct {
		name, body string
		want       bool
	}{
		{"content key before choices", `{"meta":{"content":"I cannot help with that"},"choices":[{"message":{"content":"Sure"}}]}`, false},
		{"content key in an earlier choice field", `{"choices":[{"logprobs":{"content":"I cannot help with that"},"message":{"content":"Sure"}}]}`, false},
		{"refusal in the message", `{"meta":{"refusal":null},"choices":[{"message":{"content":"Sure","refusal":"No."}}]}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.body)
			rp := ReadReply(b)
			if got := r.Reply(b, &rp); got != tt.want {
				t.Errorf("Reply(%s) = %v; want %v", tt.body, got, tt.want)
			}
		})
	}
}

// FuzzRefusalsReply: on any body whose only "content" keys are in
// choices[0].message, Reply and Message agree.
func FuzzRefusalsReply(f *testing.F) {
	for _, b := range refusalBodies {
		f.Add([]byte(b))
	}
	r := NewRefusals([]string{"I'm sorry, but I can't", "I cannot help with"})
	f.Fuzz(func(t *testing.T, b []byte) {
		rp := ReadReply(b)
		got := r.Reply(b, &rp)
		if !jsonscan.Valid(b) || !onlyMessageContent(b) {
			return // Message's shortcut may read another "content"
		}
		if want := r.Message(b); got != want {
			t.Errorf("Reply(%q) = %v; Message says %v", b, got, want)
		}
	})
}

// onlyMessageContent reports whether the literal `"content":"` and
// `"refusal"` occur at most once in b.
func onlyMessageContent(b []byte) bool {
	return countLit(b, `"content":"`) <= 1 && countLit(b, `"content"`) <= 1 && countLit(b, `"refusal"`) <= 1 && countLit(b, `"finish_reason"`) <= 1 && countLit(b, `"message"`) <= 1
}

func countLit(b []byte, lit string) int {
	n := 0
	for i := 0; i+len(lit) <= len(b); i++ {
		if string(b[i:i+len(lit)]) == lit {
			n++
		}
	}
	return n
}
