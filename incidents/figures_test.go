package incidents

import "testing"

func TestUSDRoundedOneWay(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "$0"},
		{0.00015, "$0.00015"},
		{0.000150123, "$0.00015"},
		{0.0123456, "$0.0123"},
		{0.5, "$0.5"},
		{0.99949, "$0.999"},
		{1, "$1.00"},
		{12.345, "$12.35"},
		{-0.0042, "$-0.0042"},
	}
	for _, tt := range tests {
		if got := usd(tt.v); got != tt.want {
			t.Errorf("usd(%v) = %q; want %q", tt.v, got, tt.want)
		}
	}
}
