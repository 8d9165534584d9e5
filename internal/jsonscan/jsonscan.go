// Package jsonscan reads the structure of JSON already known to be valid
// (json.Valid): an object's members and an array's elements, each value
// as written, at a fraction of what encoding/json's Decoder costs. It
// checks little; a caller that has not validated its input gets false or
// a value cut short, never a panic.
package jsonscan

import (
	"encoding/json"
	"unicode/utf8"
)

// Members calls f with each member of the JSON object doc, in the
// order written: its key, unquoted, and its value's bytes as written
// (capped, so an append cannot reach the next member). doc must already
// be valid JSON (json.Valid): this reads structure and checks little, at
// a fraction of what encoding/json's Decoder costs a member. It reports
// false if doc is not an object.
func Members(doc []byte, f func(key string, value []byte)) bool {
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return false
	}
	i = skipSpace(doc, i+1)
	if i < len(doc) && doc[i] == '}' {
		return true
	}
	for i < len(doc) && doc[i] == '"' {
		end := stringEnd(doc, i)
		if end < 0 {
			return false
		}
		key, ok := Unquote(doc[i:end])
		if !ok {
			return false
		}
		i = skipSpace(doc, end)
		if i >= len(doc) || doc[i] != ':' {
			return false
		}
		i = skipSpace(doc, i+1)
		end = valueEnd(doc, i)
		if end < 0 {
			return false
		}
		f(key, doc[i:end:end])
		i = skipSpace(doc, end)
		if i >= len(doc) {
			return false
		}
		if doc[i] == '}' {
			return true
		}
		if doc[i] != ',' {
			return false
		}
		i = skipSpace(doc, i+1)
	}
	return false
}

// Elements calls f with each element of the JSON array doc, in order,
// its bytes as written (capped, as in Members). It reports false if doc
// is not an array.
func Elements(doc []byte, f func(value []byte)) bool {
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '[' {
		return false
	}
	i = skipSpace(doc, i+1)
	if i < len(doc) && doc[i] == ']' {
		return true
	}
	for i < len(doc) {
		end := valueEnd(doc, i)
		if end < 0 {
			return false
		}
		f(doc[i:end:end])
		i = skipSpace(doc, end)
		if i >= len(doc) {
			return false
		}
		if doc[i] == ']' {
			return true
		}
		if doc[i] != ',' {
			return false
		}
		i = skipSpace(doc, i+1)
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at b[i],
// a quote, or -1 if it does not end.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// valueEnd returns the index just past the value that starts at b[i], or
// -1 if it does not end.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end := stringEnd(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default: // a number, true, false or null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}

// Unquote reads a JSON string, quotes included, as encoding/json does:
// plain ASCII as it is, anything else (escapes, other UTF-8) through
// json. Bytes that are not UTF-8 read as Node reads them
// (AppendWellFormed), not one U+FFFD a byte as json would.
func Unquote(q []byte) (string, bool) {
	if len(q) < 2 {
		return "", false
	}
	if PlainASCII(q[1 : len(q)-1]) {
		return string(q[1 : len(q)-1]), true
	}
	if !utf8.Valid(q) {
		q = AppendWellFormed(nil, q)
	}
	var s string
	return s, json.Unmarshal(q, &s) == nil
}

// PlainASCII reports whether b is printable ASCII with no quote or
// backslash: a string JSON writes as it is, between quotes.
func PlainASCII(b []byte) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
