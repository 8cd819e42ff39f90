package capture

import (
	"testing"

	"github.com/cairnhq/cairn/configs"
)

// Issue 12.4: the sk- detector needed 20+ characters after "sk-", so short
// keys (test keys, proxy keys) were stored raw.
func TestMaskShortSKKeys(t *testing.T) {
	m := NewMasker(configs.Masking{})
	for _, tt := range []struct{ in, want string }{
		{"key sk-test-1234 end", "key [SECRET] end"},
		{"sk-abc123def", "[SECRET]"},
		{"sk-1234567", "sk-1234567"}, // 7 characters: too short to be a key
		{"pip install sk-learn", "pip install sk-learn"},
		{"see sk-learning-resources", "see sk-learning-resources"},
		{"sk-abcdefghijklmnopqrst", "[SECRET]"},
	} {
		if got := m.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
