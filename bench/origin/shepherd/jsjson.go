package shepherd

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file holds JSON the way the Node app sees it: JSON.parse builds
// JavaScript values and JSON.stringify writes them back. The app echoes
// request bodies into answers ({orderId, ...body}) and stores them in
// Valkey, so a body comes back re-serialised the Node way: compact,
// numbers in JavaScript form, integer-like keys first.
//
// A JavaScript value is held as one of: nil (null), bool, float64,
// string, []any, *object, or rawJSON (bytes already rendered, for the
// pre-built catalogue). A missing property ("undefined") is a missing
// key, never a value.

// rawJSON is JSON text rendered once and written verbatim.
type rawJSON []byte

// object is a JavaScript object: string keys, values in insertion order.
type object struct {
	members []member
	index   map[string]int // built once the object is large; nil before
}

type member struct {
	key string
	val any
}

// indexAfter is the size past which an object keeps a key index, so a
// hostile body with many keys still parses in linear time.
const indexAfter = 16

// newObject returns an object with the given key/value pairs in order.
func newObject(kv ...any) *object {
	o := &object{members: make([]member, 0, len(kv)/2)}
	for i := 0; i+1 < len(kv); i += 2 {
		o.set(kv[i].(string), kv[i+1])
	}
	return o
}

func (o *object) find(key string) int {
	if o.index != nil {
		if i, ok := o.index[key]; ok {
			return i
		}
		return -1
	}
	for i := range o.members {
		if o.members[i].key == key {
			return i
		}
	}
	return -1
}

// get returns the property and whether it exists.
func (o *object) get(key string) (any, bool) {
	if o == nil {
		return nil, false
	}
	if i := o.find(key); i >= 0 {
		return o.members[i].val, true
	}
	return nil, false
}

func (o *object) has(key string) bool {
	_, ok := o.get(key)
	return ok
}

// set assigns a property: a new key goes last, an existing one keeps its
// place, as in JavaScript.
func (o *object) set(key string, val any) {
	if i := o.find(key); i >= 0 {
		o.members[i].val = val
		return
	}
	o.members = append(o.members, member{key, val})
	if o.index != nil {
		o.index[key] = len(o.members) - 1
	} else if len(o.members) > indexAfter {
		o.index = make(map[string]int, len(o.members)*2)
		for i, m := range o.members {
			o.index[m.key] = i
		}
	}
}

// keys returns the own keys in JavaScript order: array-index keys
// ascending, then the others in insertion order.
func (o *object) keys() []string {
	out := make([]string, 0, len(o.members))
	var idx []string
	for _, m := range o.members {
		if isArrayIndex(m.key) {
			idx = append(idx, m.key)
		} else {
			out = append(out, m.key)
		}
	}
	if len(idx) == 0 {
		return out
	}
	sortIndexKeys(idx)
	return append(idx, out...)
}

// isArrayIndex reports whether JavaScript treats key as an integer index
// (canonical decimal below 2^32-1), which it orders before other keys.
func isArrayIndex(key string) bool {
	if key == "" || len(key) > 10 || (key[0] == '0' && len(key) > 1) {
		return false
	}
	var n uint64
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + uint64(c-'0')
	}
	return n < math.MaxUint32
}

func sortIndexKeys(keys []string) {
	// Canonical decimals: shorter is smaller, same length compares bytewise.
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && indexLess(keys[j], keys[j-1]); j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
}

func indexLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// prop reads a property of any JavaScript value: only objects have them
// here (an array's named properties are never what the app reads).
func prop(v any, key string) (any, bool) {
	if o, ok := v.(*object); ok {
		return o.get(key)
	}
	return nil, false
}

// truthy is JavaScript's truthiness, which the app's `if (!x)` checks use.
func truthy(v any, present bool) bool {
	if !present {
		return false
	}
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case float64:
		return x != 0 && !math.IsNaN(x)
	case string:
		return x != ""
	}
	return true
}

// typeName is how zod names a parsed JSON value's type in its messages.
func typeName(v any, present bool) string {
	if !present {
		return "undefined"
	}
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		if math.IsNaN(x) {
			return "nan"
		}
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	}
	return "object"
}

// jsString is JavaScript's String(v), which is what node-postgres and
// ioredis send for a non-string parameter.
func jsString(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		if x {
			return "true"
		}
		return "false"
	case float64:
		switch {
		case math.IsNaN(x):
			return "NaN"
		case math.IsInf(x, 1):
			return "Infinity"
		case math.IsInf(x, -1):
			return "-Infinity"
		}
		return string(appendJSNumber(nil, x))
	case string:
		return x
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			if e != nil {
				parts[i] = jsString(e)
			}
		}
		return strings.Join(parts, ",")
	}
	return "[object Object]"
}

// jsonSyntaxError is a body that JSON.parse (or body-parser's strict
// check) rejects; the app answers it with 400.
type jsonSyntaxError struct {
	offset int
	msg    string
}

func (e *jsonSyntaxError) Error() string { return e.msg }

// maxJSONDepth bounds nesting; V8 would run out of stack far deeper, but a
// 10 MB body of brackets must not take this process's stack with it.
const maxJSONDepth = 1000

// parseJSON parses b as JSON.parse does. Invalid UTF-8 inside strings is
// replaced by U+FFFD, as Node's UTF-8 decoding of the body does; a lone
// surrogate escape is kept (as WTF-8) so it writes back as the same escape.
func parseJSON(b []byte) (any, error) {
	p := jsonParser{b: b}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.b) {
		return nil, p.unexpected()
	}
	return v, nil
}

type jsonParser struct {
	b []byte
	i int
}

func (p *jsonParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) unexpected() error {
	if p.i >= len(p.b) {
		return &jsonSyntaxError{p.i, "Unexpected end of JSON input"}
	}
	r, _ := utf8.DecodeRune(p.b[p.i:])
	return &jsonSyntaxError{p.i, "Unexpected token '" + string(r) + "' in JSON at position " + strconv.Itoa(p.i)}
}

func (p *jsonParser) value(depth int) (any, error) {
	if p.i >= len(p.b) {
		return nil, p.unexpected()
	}
	switch c := p.b[p.i]; {
	case c == '{':
		if depth >= maxJSONDepth {
			return nil, &jsonSyntaxError{p.i, "JSON nested too deeply at position " + strconv.Itoa(p.i)}
		}
		return p.object(depth + 1)
	case c == '[':
		if depth >= maxJSONDepth {
			return nil, &jsonSyntaxError{p.i, "JSON nested too deeply at position " + strconv.Itoa(p.i)}
		}
		return p.array(depth + 1)
	case c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true", true)
	case c == 'f':
		return p.literal("false", false)
	case c == 'n':
		return p.literal("null", nil)
	}
	return nil, p.unexpected()
}

func (p *jsonParser) literal(word string, v any) (any, error) {
	for k := 0; k < len(word); k++ {
		if p.i >= len(p.b) || p.b[p.i] != word[k] {
			return nil, p.unexpected()
		}
		p.i++
	}
	return v, nil
}

func (p *jsonParser) object(depth int) (any, error) {
	p.i++ // {
	o := &object{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return o, nil
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.unexpected()
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.unexpected()
		}
		p.i++
		p.space()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		o.set(k.(string), v)
		if more, err := p.next('}'); !more {
			return o, err
		}
	}
}

func (p *jsonParser) array(depth int) (any, error) {
	p.i++ // [
	a := []any{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return a, nil
	}
	for {
		p.space()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		if more, err := p.next(']'); !more {
			return a, err
		}
	}
}

// next reads what follows a member or an element: a comma, when more
// follow, or the closing bracket.
func (p *jsonParser) next(closer byte) (more bool, err error) {
	p.space()
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case ',':
			p.i++
			return true, nil
		case closer:
			p.i++
			return false, nil
		}
	}
	return false, p.unexpected()
}

func (p *jsonParser) number() (any, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return nil, p.unexpected()
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.unexpected()
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.unexpected()
		}
	}
	f, err := strconv.ParseFloat(string(p.b[start:p.i]), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, &jsonSyntaxError{start, "Bad number in JSON at position " + strconv.Itoa(start)}
	}
	return f, nil // out of range: ±Inf or 0, as in JavaScript
}

func (p *jsonParser) str() (any, error) {
	p.i++ // "
	start := p.i
	// Fast path: no escapes, valid UTF-8.
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := p.b[start:p.i]
			p.i++
			if utf8.Valid(s) {
				return string(s), nil
			}
			return strings.ToValidUTF8(string(s), "\uFFFD"), nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		p.i++
	}
	sb := []byte(strings.ToValidUTF8(string(p.b[start:p.i]), "\uFFFD"))
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(sb), nil
		case c < 0x20:
			return nil, p.unexpected()
		case c == '\\':
			if p.i+1 >= len(p.b) {
				p.i++
				return nil, p.unexpected()
			}
			e := p.b[p.i+1]
			p.i += 2
			switch k := strings.IndexByte(escapeLetters, e); {
			case e == '/':
				sb = append(sb, e)
			case k >= 0:
				sb = append(sb, escaped[k])
			case e == 'u':
				r, ok := p.hex4()
				if !ok {
					return nil, p.unexpected()
				}
				if r >= 0xD800 && r < 0xDC00 && p.i+6 <= len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					if lo, ok := p.hex4(); ok && lo >= 0xDC00 && lo < 0xE000 {
						sb = utf8.AppendRune(sb, 0x10000+(r-0xD800)<<10+(lo-0xDC00))
						continue
					}
					p.i = save
				}
				sb = appendWTF8(sb, r)
			default:
				p.i--
				return nil, p.unexpected()
			}
		case c < utf8.RuneSelf:
			sb = append(sb, c)
			p.i++
		default:
			r, size := utf8.DecodeRune(p.b[p.i:])
			if r == utf8.RuneError && size == 1 {
				sb = append(sb, "\uFFFD"...)
			} else {
				sb = append(sb, p.b[p.i:p.i+size]...)
			}
			p.i += size
		}
	}
	return nil, p.unexpected()
}

func (p *jsonParser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	var r rune
	for k := 0; k < 4; k++ {
		c := p.b[p.i+k]
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

// appendWTF8 appends r; a lone surrogate, which UTF-8 cannot hold, is
// written in its generalised 3-byte form so appendJSString can escape it
// back exactly as JSON.stringify would.
func appendWTF8(b []byte, r rune) []byte {
	if r >= 0xD800 && r < 0xE000 {
		return append(b, 0xED, byte(0x80|(r>>6)&0x3F), byte(0x80|r&0x3F))
	}
	return utf8.AppendRune(b, r)
}

// appendJSON appends v as JSON.stringify writes it.
func appendJSON(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		if x {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case float64:
		return appendJSNumber(dst, x)
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case uint64:
		return strconv.AppendUint(dst, x, 10)
	case string:
		return appendJSString(dst, x)
	case rawJSON:
		return append(dst, x...)
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSON(dst, e)
		}
		return append(dst, ']')
	case *object:
		dst = append(dst, '{')
		for i, k := range x.keys() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSString(dst, k)
			dst = append(dst, ':')
			val, _ := x.get(k)
			dst = appendJSON(dst, val)
		}
		return append(dst, '}')
	}
	return append(dst, "null"...)
}

// appendJSNumber writes f as JavaScript's Number#toString does; JSON has
// no NaN or Infinity, so JSON.stringify writes those as null.
func appendJSNumber(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if f == 0 {
		return append(dst, '0') // also -0
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.AppendInt(dst, int64(f), 10)
	}
	// Shortest round-trip digits; JavaScript writes plain decimals for
	// exponents -7 < e < 21 and d.ddde±x otherwise.
	var tmp [32]byte
	e := strconv.AppendFloat(tmp[:0], f, 'e', -1, 64)
	ePos := strings.LastIndexByte(string(e), 'e')
	exp, _ := strconv.Atoi(string(e[ePos+1:]))
	if exp >= -6 && exp < 21 {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	dst = append(dst, e[:ePos]...)
	dst = append(dst, 'e')
	if exp >= 0 {
		dst = append(dst, '+')
	}
	return strconv.AppendInt(dst, int64(exp), 10)
}

const hexDigits = "0123456789abcdef"

// escaped are the characters JSON writes as a backslash and the letter
// at the same place in escapeLetters.
const (
	escaped       = "\"\\\b\f\n\r\t"
	escapeLetters = "\"\\bfnrt"
)

// appendJSString quotes s as JSON.stringify does: only quote, backslash
// and control characters are escaped (not <, >, & or U+2028 as Go's
// encoder would), and lone surrogates become \udxxx.
func appendJSString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			if c == 0xED && i+2 < len(s) && s[i+1] >= 0xA0 && s[i+1] <= 0xBF {
				dst = append(dst, s[start:i]...)
				r := rune(0xD000) | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F)
				dst = append(dst, '\\', 'u', hexDigits[r>>12], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
				i += 3
				start = i
				continue
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, "\uFFFD"...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		if k := strings.IndexByte(escaped, c); k >= 0 {
			dst = append(dst, '\\', escapeLetters[k])
		} else {
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// toJSONText is JSON.stringify(v) as a string.
func toJSONText(v any) string { return string(appendJSON(nil, v)) }
