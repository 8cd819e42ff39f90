package proxy

import (
	"github.com/cairnhq/cairn/schema"
	"github.com/cairnhq/cairn/schema/anthropic"
)

// /v1/responses to a kind: anthropic provider (issue 19): the request is
// translated by translateRequest (anthropic.AppendResponsesRequest), a
// whole answer by translateRaw (AppendResponsesResponse), and a stream's
// Messages events become typed Responses events here. Nothing is stored
// at Anthropic, so rememberResponse keeps no placement: a later
// previous_response_id or /v1/responses/{id} for such a response is a 404.

// translateResponsesFrom sets s up to translate an anthropic stream into
// Responses events. The Responses stream has no [DONE]: its end is
// response.completed, then the upstream's end of body.
func (s *streamRelay) translateResponsesFrom(created int64) {
	tr := &anthropic.ResponsesStream{}
	tr.Reset(created)
	emit := s.onEvent
	s.trFeed = func(ev schema.Event) error {
		if ev.Done {
			return nil
		}
		return tr.Event(ev.Data, emit)
	}
}
