package configs

import "testing"

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		err  string
	}{
		{in: "0", want: 0},
		{in: "1048576", want: 1 << 20},
		{in: "512B", want: 512},
		{in: "16KiB", want: 16 << 10},
		{in: "256MiB", want: 256 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "10KB", want: 10_000},
		{in: "10MB", want: 10_000_000},
		{in: "2GB", want: 2_000_000_000},
		{in: " 10 MiB ", want: 10 << 20},
		{in: "", err: "bad byte size"},
		{in: "MiB", err: "bad byte size"},
		{in: "10XB", err: "bad byte size"},
		{in: "10mib", err: "bad byte size"},
		{in: "1.5GiB", err: "bad byte size"},
		{in: "-1", err: "bad byte size"},
		{in: "99999999999999999999", err: "too large"},
		{in: "9000000000GiB", err: "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseByteSize(tt.in)
			if wantErr(t, err, tt.err) {
				return
			}
			if got != tt.want {
				t.Fatalf("ParseByteSize(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1KB"},
		{1024, "1KiB"},
		{10 << 20, "10MiB"},
		{1 << 30, "1GiB"},
		{3_000_000_000, "3GB"},
		{1025, "1025B"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got := tt.in.String()
			if got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
			if back, err := ParseByteSize(got); err != nil || back != tt.in {
				t.Fatalf("ParseByteSize(%q) = %d, %v; want %d", got, back, err, tt.in)
			}
		})
	}
}
