package incidents

import (
	"testing"

	"github.com/cairnhq/cairn/configs"
)

func TestUnifiedDiff(t *testing.T) {
	tests := []struct {
		name, a, b, want string
	}{
		{"equal", "x\ny", "x\ny", ""},
		{"one line", "You are v17.", "You are v18.", "--- a\n+++ b\n@@ -1 +1 @@\n-You are v17.\n+You are v18.\n"},
		{"added line", "a\nb\nc", "a\nb\nNEVER say refund\nc", "--- a\n+++ b\n@@ -1,3 +1,4 @@\n a\n b\n+NEVER say refund\n c\n"},
		{"two hunks", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12", "1\nX\n3\n4\n5\n6\n7\n8\n9\n10\nY\n12",
			"--- a\n+++ b\n@@ -1,5 +1,5 @@\n 1\n-2\n+X\n 3\n 4\n 5\n@@ -8,5 +8,5 @@\n 8\n 9\n 10\n-11\n+Y\n 12\n"},
		{"from empty", "", "new", "--- a\n+++ b\n@@ -0,0 +1 @@\n+new\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unifiedDiff("a", "b", tt.a, tt.b); got != tt.want {
				t.Errorf("unifiedDiff(%q, %q) =\n%s\nwant\n%s", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestWithPromptDiffs(t *testing.T) {
	es := []AuditEntry{{Source: SourceReload, Changes: []configs.Change{
		{Path: "routes[r].prompt.version", From: "v17", To: "v18"},
		{Path: "routes[r].prompt.system", From: "Answer in JSON.", To: "Answer in prose."},
	}}}
	out := withPromptDiffs(es)
	want := "--- routes[r].prompt.system (v17)\n+++ routes[r].prompt.system (v18)\n@@ -1 +1 @@\n-Answer in JSON.\n+Answer in prose.\n"
	if got := out[0].Changes[1].Diff; got != want {
		t.Errorf("diff =\n%s\nwant\n%s", got, want)
	}
	if out[0].Changes[0].Diff != "" {
		t.Errorf("a version change got a diff")
	}
}
