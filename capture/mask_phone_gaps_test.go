package capture

import (
	"testing"

	"github.com/cairnhq/cairn/configs"
)

// Issue 12.14: bare national phone numbers passed the masker, and so did
// an international number written in parentheses.
func TestMaskBareNationalPhones(t *testing.T) {
	m := NewMasker(configs.Masking{})
	for _, tt := range []struct{ in, want string }{
		{"call 07700900123 now", "call [PHONE] now"},
		{"phone 0201234567", "phone [PHONE]"},
		{"call 4155552671 now", "call [PHONE] now"},
		{"Tel: 14155552671", "Tel: [PHONE]"},
		{"my phone number is 4155552671", "my phone number is [PHONE]"},
		{"order number 4155552671", "order number 4155552671"},
		{"customer (+1 415 555 2671, vip)", "customer ([PHONE], vip)"},
		// Bare runs that are not phones stay.
		{"order 4155552671 shipped", "order 4155552671 shipped"},
		{"call 1234567890", "call 1234567890"},
		{"id 0000123456", "id 0000123456"},
		{"ts 1732000000123", "ts 1732000000123"},
	} {
		if got := m.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
