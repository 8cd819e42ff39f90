package proxy

import (
	"testing"
	"time"
)

func TestParseKeepAliveTimeout(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{"timeout=5", 5 * time.Second},
		{"timeout=5, max=1000", 5 * time.Second},
		{"max=100, Timeout= 2", 2 * time.Second},
		{"max=100", 0},
		{"timeout=", 0},
		{"timeout=-3", 0},
		{"timeout=abc", 0},
		{"", 0},
	} {
		if got := parseKeepAliveTimeout([]byte(tt.in)); got != tt.want {
			t.Errorf("parseKeepAliveTimeout(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct{ ka, want time.Duration }{
		{5 * time.Second, 4 * time.Second},
		{time.Second, 500 * time.Millisecond},
		{60 * time.Second, 59 * time.Second},
	} {
		if got := keepAliveBudget(tt.ka); got != tt.want {
			t.Errorf("keepAliveBudget(%v) = %v; want %v", tt.ka, got, tt.want)
		}
	}
}
