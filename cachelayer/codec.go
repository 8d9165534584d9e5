package cachelayer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"
)

// codecVersion is the first byte of every encoded entry. A reader that
// meets another version treats the value as a miss, so a rolling upgrade
// that changes the layout costs misses, not wrong answers.
const codecVersion = 2

// The flag bits of an encoded entry.
const flagVariant = 1 << 0

// ErrCorruptEntry is returned by DecodeEntry for bytes that are not an
// entry this version of Sheepdog wrote.
var ErrCorruptEntry = errors.New("corrupt cache entry")

// AppendEncode appends e's binary form to dst. Lengths and counts are
// uvarints; times are the signed varint of their distance from the
// previous time, so the usual entry spends a few bytes on them.
//
// Layout: version, flags, status, stored, fresh-stored, swr-fresh,
// sie-fresh, headers (count, then name and value), body, tags (count,
// then name and version), path, vary (count, then names), upstream age.
func (e *Entry) AppendEncode(dst []byte) []byte {
	var flags byte
	if e.Variant {
		flags |= flagVariant
	}
	dst = append(dst, codecVersion, flags)
	dst = binary.AppendUvarint(dst, uint64(e.Status))
	dst = binary.AppendVarint(dst, e.Stored)
	dst = binary.AppendVarint(dst, e.FreshUntil-e.Stored)
	dst = binary.AppendVarint(dst, e.SWRUntil-e.FreshUntil)
	dst = binary.AppendVarint(dst, e.SIEUntil-e.FreshUntil)
	dst = binary.AppendUvarint(dst, uint64(len(e.Header)))
	for _, h := range e.Header {
		dst = appendBytes(dst, h.Name)
		dst = appendBytes(dst, h.Value)
	}
	dst = appendBytes(dst, e.Body)
	dst = binary.AppendUvarint(dst, uint64(len(e.Tags)))
	for i, tag := range e.Tags {
		dst = appendString(dst, tag)
		var v uint64
		if i < len(e.TagVersions) {
			v = e.TagVersions[i]
		}
		dst = binary.AppendUvarint(dst, v)
	}
	dst = appendString(dst, e.Path)
	dst = binary.AppendUvarint(dst, uint64(len(e.Vary)))
	for _, name := range e.Vary {
		dst = appendString(dst, name)
	}
	return binary.AppendUvarint(dst, uint64(e.UpstreamAge))
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// DecodeEntry reads an entry written by AppendEncode. It never panics:
// anything that is not exactly such an entry (another version, a
// truncated or padded value, a number not in its shortest form) is an
// ErrCorruptEntry. The entry does not share memory with b.
func DecodeEntry(b []byte) (*Entry, error) { return decodeEntry(b, true) }

// decodeShared is DecodeEntry without the copy: the entry views b, which
// must never change, as a Go string's bytes never do (an L2 value).
func decodeShared(b []byte) (*Entry, error) { return decodeEntry(b, false) }

func decodeEntry(b []byte, copied bool) (*Entry, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %d bytes", ErrCorruptEntry, len(b))
	}
	if b[0] != codecVersion {
		return nil, fmt.Errorf("%w: version %d", ErrCorruptEntry, b[0])
	}
	if b[1]&^flagVariant != 0 {
		return nil, fmt.Errorf("%w: flags %#x", ErrCorruptEntry, b[1])
	}
	// At most one copy for the whole entry: its byte slices and strings
	// view it, or b itself.
	r := reader{b: b[2:]}
	if copied {
		r.b = append([]byte(nil), r.b...)
	}
	e := &Entry{Variant: b[1]&flagVariant != 0}
	status := r.uvarint()
	if status > 999 {
		r.fail("status")
	}
	e.Status = int(status)
	e.Stored = r.varint()
	e.FreshUntil = e.Stored + r.varint()
	e.SWRUntil = e.FreshUntil + r.varint()
	e.SIEUntil = e.FreshUntil + r.varint()
	if n := r.count(2); n > 0 {
		e.Header = make([]HeaderField, n)
		for i := range e.Header {
			e.Header[i] = HeaderField{Name: r.bytes(), Value: r.bytes()}
		}
	}
	e.Body = r.bytes()
	if n := r.count(2); n > 0 {
		e.Tags = make([]string, n)
		e.TagVersions = make([]uint64, n)
		for i := range e.Tags {
			e.Tags[i] = r.string()
			e.TagVersions[i] = r.uvarint()
		}
	}
	e.Path = r.string()
	if n := r.count(1); n > 0 {
		e.Vary = make([]string, n)
		for i := range e.Vary {
			e.Vary[i] = r.string()
		}
	}
	if age := r.uvarint(); age > maxUpstreamAge {
		r.fail("upstream age")
	} else {
		e.UpstreamAge = int64(age)
	}
	if r.err == nil && len(r.b) > 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptEntry, r.err)
	}
	return e, nil
}

// reader consumes an encoded entry or message; the first error sticks and
// every later read returns zero values.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("bad %s", what)
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	// A non-shortest form would decode but not re-encode to the same bytes.
	if n <= 0 || n != uvarintLen(v) {
		r.fail("number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	u := r.uvarint()
	// binary.Varint's zig-zag form, undone here to share the length check.
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

// count reads an element count, refusing one that the remaining bytes
// cannot hold at minSize bytes an element, so a forged count cannot make
// the decoder allocate more than the value's own size.
func (r *reader) count(minSize int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/minSize) {
		r.fail("count")
		return 0
	}
	return int(n)
}

// bytes reads a length-prefixed byte string, sharing r's buffer. An empty
// string reads as nil, as the zero Entry has it.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("length")
		return nil
	}
	if n == 0 {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// string reads a length-prefixed string viewing r's buffer, which must
// never change: the decoder's own copy, or bytes no one writes.
func (r *reader) string() string {
	v := r.bytes()
	if len(v) == 0 {
		return ""
	}
	return unsafe.String(&v[0], len(v))
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
