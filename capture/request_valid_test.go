package capture

import (
	"encoding/json"
	"strings"
	"testing"
)

// Issue 15: the proxy parsed a forwarded request before sending it, so
// the writer takes its word (RawBodies.RequestValid) instead of checking
// the grammar of every request body a second time.

// TestRequestValidSkipsGrammarCheck: a body flagged valid is read as JSON
// without the check (here the flag is deliberately wrong, trailing bytes
// after the object, to show that no second check runs); unflagged, the
// same body is checked and kept as one masked string.
func TestRequestValidSkipsGrammarCheck(t *testing.T) {
	m := testMasker(t)
	body := []byte(`{"messages":[{"role":"user","content":"hi"}]} x`)
	if got, want := string(m.requestMessages(body, true)), `[{"role":"user","content":"hi"}]`; got != want {
		t.Errorf("requestMessages(flagged) = %s; want %s (no grammar check)", got, want)
	}
	if got := m.requestMessages(body, false); !json.Valid(got) || got[0] != '"' {
		t.Errorf("requestMessages(unflagged) = %s; want the body as one JSON string", got)
	}
}

// TestRequestValidClearedByRedaction: a secret whose value spans a
// string's closing quote leaves the redacted body invalid, so redaction
// drops the flag and the writer checks the body again: the record stays
// valid JSON and holds no secret.
func TestRequestValidClearedByRedaction(t *testing.T) {
	m := testMasker(t)
	secret := `abc","role":"x-secret-0123`
	body := []byte(`{"messages":[{"content":"abc","role":"x-secret-0123"}]}`)
	if !strings.Contains(string(body), secret) {
		t.Fatal("bad fixture")
	}
	r := &Record{Endpoint: "chat.completions", Status: 200, Raw: &RawBodies{RequestBody: body, RequestValid: true}}
	redactRecord(NewSecrets(secret), r)
	if r.Raw.RequestValid {
		t.Fatal("RequestValid still set after redaction changed the body")
	}
	m.maskRecord(r, true)
	if !json.Valid(r.Request) {
		t.Fatalf("record request is not JSON: %s", r.Request)
	}
	if strings.Contains(string(r.Request), "x-secret-0123") {
		t.Errorf("record request holds the secret: %s", r.Request)
	}

	// A body redaction leaves alone keeps its flag.
	r = &Record{Endpoint: "chat.completions", Status: 200, Raw: &RawBodies{RequestBody: []byte(`{"messages":[]}`), RequestValid: true}}
	redactRecord(NewSecrets(secret), r)
	if !r.Raw.RequestValid {
		t.Error("RequestValid dropped although redaction found nothing")
	}
}
