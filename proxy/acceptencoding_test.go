package proxy

import "testing"

// TestAcceptsGzip: whether an Accept-Encoding value takes gzip, as RFC 9110
// §12.5.3 reads it; an explicit gzip;q=0 refused gzip only when * was not
// listed too.
func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		ae   string
		want bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"br, gzip;q=0.5", true},
		{"gzip;q=0", false},
		{"gzip; q=0.0", false},
		{"gzip;q=0, *", false},
		{"*, gzip;q=0", false},
		{"*", true},
		{"*;q=0", false},
		{"identity", false},
		{"deflate, br", false},
		{"gzip;level=1;q=0", false},
		{"gzip;q=0.001", true},
	}
	for _, tt := range tests {
		if got := acceptsGzip([]byte(tt.ae)); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tt.ae, got, tt.want)
		}
	}
}
