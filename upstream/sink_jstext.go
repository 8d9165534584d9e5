package upstream

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/style-shepherd/sheepdog/internal/jsonscan"
)

// The Style Shepherd app is a Node server: it reads a body with
// JSON.parse and writes values back with JSON.stringify. What a sink
// writes for the app must be byte for byte what the app would have
// written, so JSON is re-serialised here the Node way: compact, numbers in
// JavaScript's form (1.0 is 1, 1e21 is 1e+21), only the escapes
// JSON.stringify makes, integer-like object keys first in ascending order
// and the other keys in first-seen order, and the last of duplicate keys
// winning. Each byte of invalid UTF-8 decodes to U+FFFD; a lone surrogate
// escape is written back as JSON.stringify writes it (\ud83d), and
// becomes U+FFFD only in a string stored as text, as Node's UTF-8 makes it.
//
// The scanner writes its output as it reads, so the common value costs
// no parse tree: only an object whose keys need reordering is rebuilt.

// appText returns the text the app stores in Valkey for a JSON value: a
// string's own text, any other value as JSON.stringify writes it. An
// empty raw is the missing value, which the app stores as "".
func appText(raw []byte) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", nil
	}
	sc := jsScanner{in: raw}
	if raw[0] == '"' {
		text, _, err := sc.str()
		if err == nil && sc.pos != len(raw) {
			err = sc.fail("data after the value")
		}
		if err != nil {
			return "", err
		}
		return storedText(text), nil
	}
	out, err := appendNodeJSON(make([]byte, 0, len(raw)), raw)
	return string(out), err
}

// AppendNodeJSON appends JSON.stringify(JSON.parse(raw)) to dst: raw as
// the app would write it back.
func AppendNodeJSON(dst, raw []byte) ([]byte, error) { return appendNodeJSON(dst, raw) }

// appendNodeJSON appends JSON.stringify(JSON.parse(raw)) to dst: raw
// itself when it is in that form already, which is the common case.
func appendNodeJSON(dst, raw []byte) ([]byte, error) {
	if nodeCanonical(raw) {
		return append(dst, raw...), nil
	}
	return reprintNodeJSON(dst, raw)
}

// reprintNodeJSON appends JSON.stringify(JSON.parse(raw)) to dst, read
// and written by the scanner.
func reprintNodeJSON(dst, raw []byte) ([]byte, error) {
	sc := jsScanner{in: raw, out: dst}
	sc.space()
	if err := sc.value(0); err != nil {
		return dst, err
	}
	sc.space()
	if sc.pos != len(raw) {
		return dst, sc.fail("data after the value")
	}
	return sc.out, nil
}

// maxDepth bounds nesting, so a hostile body cannot exhaust the stack.
const maxDepth = 10000

// jsScanner reads one JSON value from in and appends its Node form to out.
type jsScanner struct {
	in      []byte
	pos     int
	out     []byte
	members []member // a stack shared by the objects being read
}

// member is one "key":value already written to out, at out[start:end].
type member struct {
	key        []byte // decoded
	start, end int
}

func (s *jsScanner) fail(what string) error {
	return fmt.Errorf("json: %s at offset %d", what, s.pos)
}

func (s *jsScanner) space() {
	for s.pos < len(s.in) {
		switch s.in[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *jsScanner) value(depth int) error {
	if s.pos >= len(s.in) {
		return s.fail("unexpected end")
	}
	if depth > maxDepth {
		return s.fail("nested too deep")
	}
	switch c := s.in[s.pos]; {
	case c == '{':
		return s.object(depth)
	case c == '[':
		return s.array(depth)
	case c == '"':
		text, plain, err := s.str()
		if err != nil {
			return err
		}
		s.out = appendStringText(s.out, text, plain)
		return nil
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	default:
		return s.fail(fmt.Sprintf("unexpected %q", c))
	}
}

func (s *jsScanner) literal(word string) error {
	if !bytes.HasPrefix(s.in[s.pos:], []byte(word)) {
		return s.fail("bad literal")
	}
	s.pos += len(word)
	s.out = append(s.out, word...)
	return nil
}

func (s *jsScanner) array(depth int) error {
	s.pos++ // '['
	s.out = append(s.out, '[')
	s.space()
	if s.pos < len(s.in) && s.in[s.pos] == ']' {
		s.pos++
		s.out = append(s.out, ']')
		return nil
	}
	for {
		s.space()
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.space()
		if s.pos >= len(s.in) {
			return s.fail("unexpected end")
		}
		switch s.in[s.pos] {
		case ',':
			s.pos++
			s.out = append(s.out, ',')
		case ']':
			s.pos++
			s.out = append(s.out, ']')
			return nil
		default:
			return s.fail("want , or ]")
		}
	}
}

func (s *jsScanner) object(depth int) error {
	s.pos++ // '{'
	s.out = append(s.out, '{')
	body := len(s.out)
	base := len(s.members)
	defer func() { s.members = s.members[:base] }()
	s.space()
	if s.pos < len(s.in) && s.in[s.pos] == '}' {
		s.pos++
		s.out = append(s.out, '}')
		return nil
	}
	reorder := false
	for {
		s.space()
		if s.pos >= len(s.in) || s.in[s.pos] != '"' {
			return s.fail("want a key")
		}
		key, plain, err := s.str()
		if err != nil {
			return err
		}
		if len(s.members) > base {
			s.out = append(s.out, ',')
		}
		start := len(s.out)
		s.out = appendStringText(s.out, key, plain)
		s.out = append(s.out, ':')
		s.space()
		if s.pos >= len(s.in) || s.in[s.pos] != ':' {
			return s.fail("want :")
		}
		s.pos++
		s.space()
		if err := s.value(depth + 1); err != nil {
			return err
		}
		if _, ok := arrayIndex(key); ok {
			reorder = true
		}
		s.members = append(s.members, member{key: key, start: start, end: len(s.out)})
		s.space()
		if s.pos >= len(s.in) {
			return s.fail("unexpected end")
		}
		if s.in[s.pos] == '}' {
			s.pos++
			break
		}
		if s.in[s.pos] != ',' {
			return s.fail("want , or }")
		}
		s.pos++
	}
	if ms := s.members[base:]; reorder || hasDuplicateKey(ms) {
		s.reorder(body, ms)
	}
	s.out = append(s.out, '}')
	return nil
}

// reorder rewrites the members written from out[body:] in JavaScript's
// property order: array indexes ascending, then the other keys where they
// were first seen, each with the last value given for it.
func (s *jsScanner) reorder(body int, ms []member) {
	last := make(map[string]int, len(ms)) // key → its last member
	var order []int                       // first sightings, in order
	for i, m := range ms {
		if _, seen := last[string(m.key)]; !seen {
			order = append(order, i)
		}
		last[string(m.key)] = i
	}
	for j, i := range order {
		order[j] = last[string(ms[i].key)]
	}
	slices.SortStableFunc(order, func(a, b int) int {
		x, aIndex := arrayIndex(ms[a].key)
		y, bIndex := arrayIndex(ms[b].key)
		switch {
		case aIndex && bIndex:
			return cmp.Compare(x, y)
		case aIndex:
			return -1
		case bIndex:
			return 1
		}
		return 0
	})
	written := bytes.Clone(s.out[body:])
	s.out = s.out[:body]
	for j, i := range order {
		if j > 0 {
			s.out = append(s.out, ',')
		}
		s.out = append(s.out, written[ms[i].start-body:ms[i].end-body]...)
	}
}

func hasDuplicateKey(ms []member) bool {
	if len(ms) <= 16 {
		for i := range ms {
			for j := range i {
				if bytes.Equal(ms[i].key, ms[j].key) {
					return true
				}
			}
		}
		return false
	}
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		if seen[string(m.key)] {
			return true
		}
		seen[string(m.key)] = true
	}
	return false
}

// arrayIndex reports whether key is an array index as JavaScript orders
// them: the canonical decimal form of an integer below 2^32-1.
func arrayIndex(key []byte) (int64, bool) {
	if len(key) == 0 || len(key) > 10 || (len(key) > 1 && key[0] == '0') {
		return 0, false
	}
	var n int64
	for _, c := range key {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, n < math.MaxUint32
}

// str reads the string at s.pos and returns its text. plain reports that
// the text was written without escapes, control characters or invalid
// UTF-8: then it is the input's own bytes, and JSON.stringify writes it
// back unchanged.
func (s *jsScanner) str() (text []byte, plain bool, err error) {
	s.pos++ // '"'
	start := s.pos
	for s.pos < len(s.in) {
		c := s.in[s.pos]
		if c == '"' {
			text = s.in[start:s.pos]
			s.pos++
			if utf8.Valid(text) {
				return text, true, nil
			}
			return jsonscan.AppendWellFormed(make([]byte, 0, len(text)+8), text), false, nil
		}
		if c == '\\' || c < 0x20 {
			s.pos = start
			return s.escapedStr()
		}
		s.pos++
	}
	return nil, false, s.fail("unterminated string")
}

// escapedStr decodes a string with escapes, from just after its quote.
func (s *jsScanner) escapedStr() ([]byte, bool, error) {
	var text []byte
	for s.pos < len(s.in) {
		c := s.in[s.pos]
		switch {
		case c == '"':
			s.pos++
			return text, false, nil
		case c < 0x20:
			return nil, false, s.fail("control character in string")
		case c != '\\':
			run := s.pos // raw bytes up to the next escape or the end
			for s.pos < len(s.in) && s.in[s.pos] != '\\' && s.in[s.pos] != '"' && s.in[s.pos] >= 0x20 {
				s.pos++
			}
			text = jsonscan.AppendWellFormed(text, s.in[run:s.pos])
			continue
		}
		if s.pos+1 >= len(s.in) {
			break
		}
		esc := s.in[s.pos+1]
		s.pos += 2
		switch esc {
		case '"', '\\', '/':
			text = append(text, esc)
		case 'b':
			text = append(text, '\b')
		case 'f':
			text = append(text, '\f')
		case 'n':
			text = append(text, '\n')
		case 'r':
			text = append(text, '\r')
		case 't':
			text = append(text, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return nil, false, s.fail("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				pair := utf8.RuneError
				if bytes.HasPrefix(s.in[s.pos:], []byte(`\u`)) {
					save := s.pos
					s.pos += 2
					if r2, ok := s.hex4(); ok {
						pair = utf16.DecodeRune(r, r2)
					}
					if pair == utf8.RuneError {
						s.pos = save // the next escape stands alone
					}
				}
				if pair == utf8.RuneError {
					// A lone surrogate: kept, as a JavaScript string keeps
					// it, for JSON.stringify to write back as \udXXX.
					text = appendSurrogate(text, r)
					continue
				}
				r = pair
			}
			text = utf8.AppendRune(text, r)
		default:
			return nil, false, s.fail("bad escape")
		}
	}
	return nil, false, s.fail("unterminated string")
}

func (s *jsScanner) hex4() (rune, bool) {
	if s.pos+4 > len(s.in) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(s.in[s.pos:s.pos+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	s.pos += 4
	return rune(n), true
}

// number reads a number as JSON's grammar has it and writes it as
// JavaScript does.
func (s *jsScanner) number() error {
	start := s.pos
	if s.in[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(s.in) && s.in[s.pos] == '0':
		s.pos++
	case s.digits() == 0:
		return s.fail("bad number")
	}
	integer := true
	if s.pos < len(s.in) && s.in[s.pos] == '.' {
		s.pos++
		integer = false
		if s.digits() == 0 {
			return s.fail("bad fraction")
		}
	}
	if s.pos < len(s.in) && (s.in[s.pos] == 'e' || s.in[s.pos] == 'E') {
		s.pos++
		integer = false
		if s.pos < len(s.in) && (s.in[s.pos] == '+' || s.in[s.pos] == '-') {
			s.pos++
		}
		if s.digits() == 0 {
			return s.fail("bad exponent")
		}
	}
	lit := s.in[start:s.pos]
	// An integer of up to 15 digits is exact in a float64 and written
	// as it came, but for -0, which JavaScript writes as 0.
	if integer && len(lit) <= 15 && string(lit) != "-0" {
		s.out = append(s.out, lit...)
		return nil
	}
	// Out of range is ±Inf (written as null) or 0, as in JavaScript.
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return s.fail("bad number")
	}
	s.out = appendJSNumber(s.out, f)
	return nil
}

func (s *jsScanner) digits() int {
	start := s.pos
	for s.pos < len(s.in) && s.in[s.pos] >= '0' && s.in[s.pos] <= '9' {
		s.pos++
	}
	return s.pos - start
}

// Decoded text holds a lone surrogate (U+D800 to U+DFFF) as the three bytes
// UTF-8 would give it (ED A0..BF xx), which valid UTF-8 never holds, so
// that it can be written back as JSON.stringify writes it.
func appendSurrogate(dst []byte, r rune) []byte {
	return append(dst, 0xED, 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
}

// surrogateAt returns the lone surrogate encoded at s[i:], if one is.
func surrogateAt[T string | []byte](s T, i int) (rune, bool) {
	if i+2 >= len(s) || s[i] != 0xED || s[i+1] < 0xA0 || s[i+1] > 0xBF || s[i+2]&0xC0 != 0x80 {
		return 0, false
	}
	return 0xD000 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F), true
}

// storedText is decoded text as Valkey receives it from the app: a lone
// surrogate becomes U+FFFD, as Node's UTF-8 encoding of a string makes it.
func storedText(text []byte) string {
	if !bytes.Contains(text, []byte{0xED}) {
		return string(text)
	}
	out := make([]byte, 0, len(text))
	for i := 0; i < len(text); i++ {
		if _, ok := surrogateAt(text, i); ok {
			out = utf8.AppendRune(out, utf8.RuneError)
			i += 2
			continue
		}
		out = append(out, text[i])
	}
	return string(out)
}

// appendStringText writes decoded text as a JSON string; plain text (see
// str) needs no escapes and is copied as it came.
func appendStringText(dst, text []byte, plain bool) []byte {
	if plain {
		dst = append(dst, '"')
		dst = append(dst, text...)
		return append(dst, '"')
	}
	return AppendJSString(dst, text)
}

// appendJSNumber writes f as JavaScript's Number::toString does; NaN and
// the infinities are null, as in JSON.stringify.
func appendJSNumber(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if f == 0 {
		return append(dst, '0') // -0 as well
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	// The shortest digits that read back as f, and where the point goes:
	// the value is 0.digits × 10^n.
	mant, exp, _ := strings.Cut(strconv.FormatFloat(f, 'e', -1, 64), "e")
	digits := strings.Replace(mant, ".", "", 1)
	e, _ := strconv.Atoi(exp)
	n, k := e+1, len(digits)
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, "0."...)
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}

// AppendJSString quotes s as JSON.stringify does: it escapes only the
// quote, the backslash and control characters, and writes everything
// else as it is (no \u003c, no \u2028).
func AppendJSString[T string | []byte](dst []byte, s T) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case c == 0xED:
			if r, ok := surrogateAt(s, i); ok {
				dst = append(dst, '\\', 'u', hex[r>>12], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
				i += 2
				continue
			}
			dst = append(dst, c)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
