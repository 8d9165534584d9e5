package upstream

import (
	"bytes"
	"unicode/utf8"
)

// nodeCanonical reports whether raw is already what
// JSON.stringify(JSON.parse(raw)) writes, so that it can be copied as it
// is rather than re-printed. It checks, in one pass and without
// allocating, the forms a front end commonly sends: compact JSON, strings
// without escapes, integers of up to 15 digits and decimals of up to 15
// significant digits between 1e-6 and 1e21 with no trailing zero (which
// JavaScript prints back digit for digit), objects of up to 16 distinct
// keys none of which starts with a digit (V8 puts array-index keys first)
// or is __proto__. Anything else is false, and the scanner re-prints it.
func nodeCanonical(raw []byte) bool {
	c := canonScan{in: raw}
	return c.value(0) && c.pos == len(raw)
}

// maxCanonDepth bounds the nesting the check follows; deeper values go
// to the scanner, which has its own bound.
const maxCanonDepth = 32

type canonScan struct {
	in  []byte
	pos int
}

func (c *canonScan) value(depth int) bool {
	if c.pos >= len(c.in) || depth > maxCanonDepth {
		return false
	}
	switch b := c.in[c.pos]; {
	case b == '{':
		return c.object(depth)
	case b == '[':
		return c.array(depth)
	case b == '"':
		_, ok := c.str()
		return ok
	case b == '-' || isDigit(b):
		return c.number()
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	}
	return false
}

func (c *canonScan) literal(word string) bool {
	if len(c.in)-c.pos < len(word) || string(c.in[c.pos:c.pos+len(word)]) != word {
		return false
	}
	c.pos += len(word)
	return true
}

// str reads a string with no escape and no control character, whose
// bytes are valid UTF-8, and returns its text.
func (c *canonScan) str() ([]byte, bool) {
	start, ascii := c.pos+1, true
	for i := start; i < len(c.in); i++ {
		switch b := c.in[i]; {
		case b == '"':
			text := c.in[start:i]
			if !ascii && !utf8.Valid(text) {
				return nil, false
			}
			c.pos = i + 1
			return text, true
		case b == '\\' || b < 0x20:
			return nil, false
		case b >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// number reads a number JavaScript prints back as written: not -0, no
// exponent, at most 15 significant digits (so that the double nearest to
// it prints as these digits), no trailing zero after a point, and not
// under 1e-6 (JavaScript writes those with an exponent).
func (c *canonScan) number() bool {
	i := c.pos
	neg := c.in[i] == '-'
	if neg {
		i++
	}
	intStart := i
	for i < len(c.in) && isDigit(c.in[i]) {
		i++
	}
	intDigits := i - intStart
	if intDigits == 0 || (intDigits > 1 && c.in[intStart] == '0') {
		return false
	}
	zero := intDigits == 1 && c.in[intStart] == '0'
	significant := intDigits
	if zero {
		significant = 0
	}
	if i < len(c.in) && c.in[i] == '.' {
		i++
		fracStart := i
		for i < len(c.in) && isDigit(c.in[i]) {
			i++
		}
		frac := c.in[fracStart:i]
		if len(frac) == 0 || frac[len(frac)-1] == '0' {
			return false
		}
		if zero {
			lead := len(frac) - len(bytes.TrimLeft(frac, "0"))
			if lead > 5 {
				return false
			}
			significant = len(frac) - lead
		} else {
			significant += len(frac)
		}
	} else if neg && zero {
		return false
	}
	if significant > 15 || (i < len(c.in) && (c.in[i] == 'e' || c.in[i] == 'E')) {
		return false
	}
	c.pos = i
	return true
}

func (c *canonScan) array(depth int) bool {
	c.pos++ // [
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.pos++
		return true
	}
	for {
		if !c.value(depth + 1) {
			return false
		}
		if !c.next(']') {
			return false
		}
		if c.in[c.pos-1] == ']' {
			return true
		}
	}
}

func (c *canonScan) object(depth int) bool {
	c.pos++ // {
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
		return true
	}
	var keys [16][]byte
	n := 0
	for {
		if c.pos >= len(c.in) || c.in[c.pos] != '"' || n == len(keys) {
			return false
		}
		key, ok := c.str()
		if !ok || (len(key) > 0 && isDigit(key[0])) || string(key) == "__proto__" {
			return false
		}
		for _, k := range keys[:n] {
			if bytes.Equal(k, key) {
				return false // the last one wins, in the first one's place
			}
		}
		keys[n] = key
		n++
		if c.pos >= len(c.in) || c.in[c.pos] != ':' {
			return false
		}
		c.pos++
		if !c.value(depth+1) || !c.next('}') {
			return false
		}
		if c.in[c.pos-1] == '}' {
			return true
		}
	}
}

// next reads the comma or the closing byte after a member or element.
func (c *canonScan) next(closing byte) bool {
	if c.pos >= len(c.in) || (c.in[c.pos] != ',' && c.in[c.pos] != closing) {
		return false
	}
	c.pos++
	return true
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }
