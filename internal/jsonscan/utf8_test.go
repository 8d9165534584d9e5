package jsonscan

import (
	"testing"
	"unicode/utf8"
)

// TestAppendWellFormed: the answers are Node's, from
// Buffer.from([...]).toString() (node v20).
func TestAppendWellFormed(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"héllo €𝄞", "héllo €𝄞"},
		{"\xe2\x82A\xf0\x9f\x98", "\uFFFDA\uFFFD"}, // cut short: one each
		{"a\xe2\x82", "a\uFFFD"},
		{"\xff\xfe", "\uFFFD\uFFFD"},
		{"\xc0\xaf", "\uFFFD\uFFFD"},                     // overlong
		{"\xed\xa0\x80a", "\uFFFD\uFFFD\uFFFDa"},         // a surrogate
		{"\xe0\x80\x80", "\uFFFD\uFFFD\uFFFD"},           // overlong three bytes
		{"\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"}, // past U+10FFFF
		{"\xf0\x9f\x98\xf0\x9f\x98\x80", "\uFFFD😀"},
		{"\xef\xbf\xbd", "\uFFFD"}, // U+FFFD itself, as it is
		{"\x80\x80", "\uFFFD\uFFFD"},
	} {
		got := string(AppendWellFormed(nil, []byte(tc.in)))
		if got != tc.want {
			t.Errorf("AppendWellFormed(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzAppendWellFormed(f *testing.F) {
	f.Add([]byte("\xe2\x82A\xf0\x9f\x98"))
	f.Add([]byte("ok"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := AppendWellFormed(nil, in)
		if !utf8.Valid(out) {
			t.Fatalf("AppendWellFormed(%q) = %q, not valid UTF-8", in, out)
		}
		if utf8.Valid(in) && string(out) != string(in) {
			t.Fatalf("valid %q changed to %q", in, out)
		}
	})
}

func TestUnquoteReadsBytesAsNodeDoes(t *testing.T) {
	if s, ok := Unquote([]byte("\"a\xe2\x82\\n\"")); !ok || s != "a\uFFFD\n" {
		t.Errorf("Unquote = %q, %v; node reads %q", s, ok, "a\uFFFD\n")
	}
}
