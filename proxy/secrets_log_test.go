package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/capture"
)

// Issue 12.4: a log line never carries one of the gateway's secrets, in
// the message, an attribute, an error, a group or a logger's own attrs,
// including secrets added by a later reload.
func TestRedactingLogger(t *testing.T) {
	const key, later = "sk-proj-LOG0123456789abcdef", "reloaded-key-5555"
	var buf bytes.Buffer
	var r capture.Redactor
	r.Add(capture.NewSecrets(key))
	log := newRedactingLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &r)
	child := log.With("upstream", "bearer "+key).WithGroup("g")
	r.Add(capture.NewSecrets(later))
	log.Debug("refused key "+key, "err", errors.New("401: "+key), "body", []byte(key), "n", 3)
	child.Info("reload", "new", later, slog.Group("inner", "k", fmt.Sprintf("%q", key)))
	out := buf.String()
	if strings.Contains(out, "0123456789abcdef") || strings.Contains(out, later) {
		t.Errorf("log holds a secret:\n%s", out)
	}
	if strings.Count(out, capture.PlaceholderSecret) < 5 || !strings.Contains(out, "n=3") {
		t.Errorf("log lost its content:\n%s", out)
	}
}
