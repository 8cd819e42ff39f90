package loadtest

// The personal data a LeakPII fault puts in the mock's answers: values no
// request holds, so a gateway that checks answers against requests sees a
// leak. Tests grep for them in everything the gateway writes.
const (
	MockLeakedEmail = "jordan.leak@private-mail.example"
	MockLeakedPhone = "+1 415 555 0142"
)

// MockRefusal is the answer of a Refuse fault (variant 0).
const MockRefusal = "I'm sorry, but I can't help with that request."

// guardrailFault applies the Refuse and LeakPII faults to a planned reply.
// Refuse variants: 0 answers with MockRefusal as the content, 1 stops with
// finish_reason content_filter and empty content. LeakPII appends the
// leaked contact to a text answer; a JSON answer (response_format) gets it
// as an extra "contact" field so that it stays valid JSON.
func guardrailFault(r *reply, f Fault, jsonWanted bool, seq int64) {
	if f.Refuse {
		r.kind, r.name = kindText, ""
		switch f.variant(seq, 2) {
		case 0:
			r.text, r.finish = MockRefusal, "stop"
		default:
			r.text, r.finish = "", "content_filter"
		}
		return
	}
	if !f.LeakPII || r.kind != kindText {
		return
	}
	contact := "Contact " + MockLeakedEmail + " or " + MockLeakedPhone + "."
	if jsonWanted && len(r.text) > 1 && r.text[0] == '{' {
		sep := ","
		if r.text == "{}" {
			sep = ""
		}
		r.text = `{"contact":` + string(appendJSONString(nil, contact)) + sep + r.text[1:]
		return
	}
	r.text += " " + contact
}
