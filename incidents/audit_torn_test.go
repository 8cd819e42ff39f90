package incidents

import (
	"os"
	"path/filepath"
	"testing"
)

// Reopening after a crash mid-write cuts the torn final entry, so no torn
// line stays in audit.jsonl; an entry that lacks only its newline is kept.
func TestAuditReopenLeavesNoTornLine(t *testing.T) {
	for _, tt := range []struct {
		name, tail string
		want       int
	}{
		{"torn", `{"id":"aud_torn","at":`, 1},
		{"no newline", `{"id":"aud_whole","at":"2026-11-24T10:00:00Z","source":"reload","config_revision":"r","changes":[]}`, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			a, err := OpenAudit(dir, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			a.Append(AuditEntry{Source: SourceStartup})
			a.Close()
			f, _ := os.OpenFile(filepath.Join(dir, auditFile), os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString(tt.tail)
			f.Close()
			a, err = OpenAudit(dir, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			a.Append(AuditEntry{Source: SourceReload})
			a.Close()
			checkAuditFile(t, dir, tt.want+1)
		})
	}
}
