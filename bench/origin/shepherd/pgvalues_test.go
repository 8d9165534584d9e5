package shepherd

import "testing"

func TestPGDecimal2(t *testing.T) {
	cases := []struct {
		in   any
		want string // "" for a refusal
	}{
		{29.99, "29.99"}, {"29.99", "29.99"}, {5.0, "5.00"}, {"5", "5.00"},
		{0.005, "0.01"}, {-0.005, "-0.01"}, {1.004, "1.00"}, {"2.675", "2.68"},
		{" 7.5 ", "7.50"}, {"1e2", "100.00"}, {"-0", "0.00"}, {"nan", "NaN"},
		{99999999.994, "99999999.99"}, {99999999.995, ""}, {1e21, ""},
		{"abc", ""}, {"1/2", ""}, {"0x10", ""}, {"", ""}, {"1e", ""}, {true, ""},
		{newObject(), ""}, {[]any{1.0}, ""}, {nil, ""},
	}
	for _, tc := range cases {
		t.Run(jsString(tc.in), func(t *testing.T) {
			got, err := pgDecimal2(tc.in, true, "total_amount")
			if tc.want == "" {
				if err == nil {
					t.Errorf("pgDecimal2(%#v) = %q, want a refusal", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("pgDecimal2(%#v) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	if _, err := pgDecimal2(nil, false, "total_amount"); err == nil {
		t.Errorf("a missing value is not NOT NULL's refusal")
	}
}

func TestPGText(t *testing.T) {
	cases := []struct {
		in   any
		want string // "<null>" for NULL, "" for a refusal
	}{
		{"user_1", "user_1"}, {42.0, "42"}, {false, "false"}, {nil, "<null>"},
		{newObject("a", 1.0), `{"a":1}`}, {[]any{"a", nil, `q"b`}, `{"a",NULL,"q\"b"}`},
		{"nul\x00byte", ""}, {"twenty-one characters", ""}, {"twenty characters!!!", "twenty characters!!!"},
	}
	for _, tc := range cases {
		t.Run(jsString(tc.in), func(t *testing.T) {
			got, err := pgText(tc.in, true, "status", 20)
			switch {
			case tc.want == "":
				if err == nil {
					t.Errorf("pgText(%#v) = %v, want a refusal", tc.in, *got)
				}
			case tc.want == "<null>":
				if got != nil || err != nil {
					t.Errorf("pgText(%#v) = %v, %v; want NULL", tc.in, got, err)
				}
			case err != nil || got == nil || *got != tc.want:
				t.Errorf("pgText(%#v) = %v, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}
