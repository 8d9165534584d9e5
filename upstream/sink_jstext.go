package upstream

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The Style Shepherd app is a Node server: it reads a body with
// JSON.parse and writes values back with JSON.stringify. What a sink
// writes for the app must be byte for byte what the app would have
// written, so JSON is re-serialised here the Node way: compact, numbers in
// JavaScript's form (1.0 is 1, 1e21 is 1e+21), only the escapes
// JSON.stringify makes, integer-like object keys first in ascending order
// and the other keys in first-seen order, and the last of duplicate keys
// winning. Lone surrogate escapes decode to U+FFFD, as Node does when it
// stores a string as UTF-8.

// appText returns the text the app stores in Valkey for a JSON value: a
// string's own text, any other value as JSON.stringify writes it. An
// empty raw is the missing value, which the app stores as "".
func appText(raw []byte) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", nil
	}
	if s, ok := plainString(raw); ok {
		return s, nil
	}
	v, err := parseNodeJSON(raw)
	if err != nil {
		return "", err
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	return string(appendNodeValue(nil, v)), nil
}

// plainString returns the text of a JSON string that has no escapes, no
// control characters and valid UTF-8: most values the app stores as
// strings, which then need no parsing.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c == '"' || c == '\\' || c < 0x20 {
			return "", false
		}
	}
	return string(inner), utf8.Valid(inner)
}

// appendNodeJSON appends JSON.stringify(JSON.parse(raw)) to dst.
func appendNodeJSON(dst, raw []byte) ([]byte, error) {
	v, err := parseNodeJSON(raw)
	if err != nil {
		return dst, err
	}
	return appendNodeValue(dst, v), nil
}

// nodeObject is a parsed JSON object: its keys in first-seen order and
// the last value given for each.
type nodeObject struct {
	keys []string
	vals map[string]any
}

var errTrailing = errors.New("json: data after the value")

// parseNodeJSON parses one JSON value into nil, bool, float64, string,
// []any or *nodeObject.
func parseNodeJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := parseNodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errTrailing
	}
	return v, nil
}

func parseNodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch t := tok.(type) {
	case json.Number:
		// Out of range is ±Inf (written as null) or 0, as in JavaScript.
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, err
		}
		return f, nil
	case json.Delim:
		if t == '[' {
			return parseNodeArray(dec)
		}
		if t == '{' {
			return parseNodeObject(dec)
		}
		return nil, errors.New("json: unexpected " + t.String())
	default: // nil, bool, string
		return t, nil
	}
}

func parseNodeArray(dec *json.Decoder) (any, error) {
	arr := []any{}
	for dec.More() {
		v, err := parseNodeValue(dec)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
	}
	_, err := dec.Token() // ']'
	return arr, err
}

func parseNodeObject(dec *json.Decoder) (any, error) {
	obj := &nodeObject{vals: make(map[string]any)}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errors.New("json: object key is not a string")
		}
		v, err := parseNodeValue(dec)
		if err != nil {
			return nil, err
		}
		if _, seen := obj.vals[key]; !seen {
			obj.keys = append(obj.keys, key)
		}
		obj.vals[key] = v
	}
	_, err := dec.Token() // '}'
	return obj, err
}

func appendNodeValue(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		return strconv.AppendBool(dst, v)
	case float64:
		return appendJSNumber(dst, v)
	case string:
		return appendJSString(dst, v)
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendNodeValue(dst, e)
		}
		return append(dst, ']')
	case *nodeObject:
		dst = append(dst, '{')
		for i, k := range v.ordered() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSString(dst, k)
			dst = append(dst, ':')
			dst = appendNodeValue(dst, v.vals[k])
		}
		return append(dst, '}')
	}
	return append(dst, "null"...) // not reached: parseNodeValue makes no other type
}

// ordered returns the keys in JavaScript's property order: array indexes
// ascending, then the others in the order they were first seen.
func (o *nodeObject) ordered() []string {
	var indexes, names []string
	for _, k := range o.keys {
		if _, ok := arrayIndex(k); ok {
			indexes = append(indexes, k)
		} else {
			names = append(names, k)
		}
	}
	if len(indexes) == 0 {
		return o.keys
	}
	slices.SortFunc(indexes, func(a, b string) int {
		x, _ := arrayIndex(a)
		y, _ := arrayIndex(b)
		return cmp.Compare(x, y)
	})
	return append(indexes, names...)
}

// arrayIndex reports whether k is an array index as JavaScript orders
// them: the canonical decimal form of an integer below 2^32-1.
func arrayIndex(k string) (int64, bool) {
	if k == "" || len(k) > 10 || (len(k) > 1 && k[0] == '0') {
		return 0, false
	}
	var n int64
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, n < math.MaxUint32
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

// appendJSString quotes s as JSON.stringify does: it escapes only the
// quote, the backslash and control characters, and writes everything
// else as it is (no \u003c, no \u2028).
func appendJSString(dst []byte, s string) []byte {
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
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
