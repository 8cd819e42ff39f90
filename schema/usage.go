package schema

import "github.com/tidwall/gjson"

// Usage is a response's token usage.
type Usage struct {
	PromptTokens     int
	CompletionTokens int
	TotalTokens      int
	// CachedTokens are the prompt tokens served from the provider's
	// prompt cache (usage.prompt_tokens_details.cached_tokens).
	CachedTokens int
}

// ReadUsage reads "usage" from a chat completion, a chat.completion.chunk or
// an embeddings response body. ok is false when usage is absent or not an
// object. A missing total_tokens is the sum of the other two. body is only
// read; nothing is retained.
func ReadUsage(body []byte) (u Usage, ok bool) {
	return usageOf(gjson.Get(b2s(body), "usage"))
}

func usageOf(v gjson.Result) (u Usage, ok bool) {
	if !v.IsObject() {
		return Usage{}, false
	}
	var total bool
	v.ForEach(func(k, n gjson.Result) bool {
		switch k.Str {
		case "prompt_tokens", "input_tokens": // input_…: the Responses API
			u.PromptTokens = tokenCount(n)
		case "completion_tokens", "output_tokens":
			u.CompletionTokens = tokenCount(n)
		case "prompt_tokens_details", "input_tokens_details":
			u.CachedTokens = tokenCount(n.Get("cached_tokens"))
		case "total_tokens":
			u.TotalTokens = tokenCount(n)
			total = n.Type == gjson.Number
		}
		return true
	})
	if !total {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	return u, true
}

// tokenCount reads a token count, clamping nonsense (negative, fractional,
// huge) to something that cannot overflow the limiter's arithmetic.
func tokenCount(n gjson.Result) int {
	if n.Type != gjson.Number || n.Num < 0 {
		return 0
	}
	if n.Num > 1<<40 {
		return 1 << 40
	}
	return int(n.Num)
}
