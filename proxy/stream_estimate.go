package proxy

// Issue 12.11: a stream that ends without the provider's usage event (the
// client went away, the upstream broke, a deadline cut it, a buffered
// stream broke and fell back, or the provider ended it with [DONE] but
// never sent usage although Cairn asks for it) was charged nothing, though the provider
// bills the prompt it read and the tokens it generated. A client that
// closed every stream just before its end spent no TPM at all. Such a
// stream is charged an estimate instead.

// bytesPerToken is OpenAI's rule of thumb for English text.
const bytesPerToken = 4

// estimatedTokens estimates what s's attempt cost: the request body and
// the content, legacy text and tool-call arguments received so far, at
// bytesPerToken. The body's JSON framing makes it an overestimate of the
// prompt by a little, which errs on the side of the key's limit.
func (s *streamRelay) estimatedTokens() int {
	n := len(s.x.body) + len(s.acc.Content()) + len(s.text)
	for _, tc := range s.acc.ToolCalls() {
		n += len(tc.Name) + len(tc.Arguments)
	}
	return (n + bytesPerToken - 1) / bytesPerToken
}

// chargeEstimate adds the estimate of s's attempt to the exchange's
// charge and to the attempt in the record, when its stream ended without
// usage: broken, or ended with [DONE] by a provider that ignores
// include_usage. A second call for the same attempt charges nothing.
func (s *streamRelay) chargeEstimate() {
	x := s.x
	n := s.estimatedTokens()
	if s.estimated || n <= 0 || len(x.rec.Attempts) == 0 {
		return
	}
	s.estimated = true
	x.rec.Attempts[len(x.rec.Attempts)-1].EstimatedTokens += n
	x.estimatedTokens += n
}
