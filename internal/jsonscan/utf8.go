package jsonscan

import "unicode/utf8"

// AppendWellFormed appends text as Node decodes bytes into a string (the
// WHATWG UTF-8 decoder, which Buffer#toString and express.json() use):
// valid UTF-8 as it is, and each maximal subpart of an ill-formed
// sequence as one U+FFFD. A character cut short ("\xe2\x82") is one
// U+FFFD, not one per byte as Go's decoders give, so Sheepdog reads a
// body the way the app does. An encoded surrogate (ED A0..BF) is never
// well formed: three U+FFFD.
func AppendWellFormed(dst, text []byte) []byte {
	for i := 0; i < len(text); {
		if c := text[i]; c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(text[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, "\uFFFD"...)
			i += maximalSubpart(text[i:])
			continue
		}
		dst = append(dst, text[i:i+n]...)
		i += n
	}
	return dst
}

// maximalSubpart is the length of the ill-formed sequence at the start of
// s: its lead byte and the bytes after it that could still have made a
// character (Unicode's "maximal subpart", table 3-7 of the standard).
func maximalSubpart(s []byte) int {
	lo, hi := byte(0x80), byte(0xBF) // what the second byte may be
	var need int                     // continuation bytes the lead asks for
	switch c := s[0]; {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	default: // a continuation byte, C0, C1 or F5..FF: never a lead
		return 1
	}
	n := 1
	for ; n <= need && n < len(s) && s[n] >= lo && s[n] <= hi; n++ {
		lo, hi = 0x80, 0xBF
	}
	return n
}
