package cachelayer

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"sync"
)

// Key identifies one cached answer: the first 16 bytes of a SHA-256 over
// the request fields that make up the key. It is shown only as hex, and
// only where an operator asks for it: the fields it was built from never
// appear in clear.
type Key [16]byte

// String returns the key in hex.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// KeyBuilder hashes a sequence of (name, value) fields into a Key. Each
// field is framed by its lengths, so ("ab","c") and ("a","bc") differ, and
// the order of Add calls matters: the caller sorts what must not depend on
// order. The zero value is ready to use; AcquireKeyBuilder reuses builders
// so that building a key does not allocate.
type KeyBuilder struct {
	h       hash.Hash
	scratch []byte // length prefixes and names, reused
	sum     []byte // digest, reused
}

var keyBuilders = sync.Pool{New: func() any { return new(KeyBuilder) }}

// AcquireKeyBuilder returns a reset builder from a pool. Give it back with
// ReleaseKeyBuilder when the key is built.
func AcquireKeyBuilder() *KeyBuilder {
	b := keyBuilders.Get().(*KeyBuilder)
	b.Reset()
	return b
}

// ReleaseKeyBuilder returns b to the pool; b must not be used afterwards.
func ReleaseKeyBuilder(b *KeyBuilder) { keyBuilders.Put(b) }

// Reset forgets every field added so far.
func (b *KeyBuilder) Reset() {
	if b.h == nil {
		b.h = sha256.New()
		return
	}
	b.h.Reset()
}

// Add appends one field. A nil and an empty value are the same field.
func (b *KeyBuilder) Add(name string, value []byte) {
	if b.h == nil {
		b.h = sha256.New()
	}
	b.scratch = appendFrame(b.scratch[:0], name, len(value))
	b.h.Write(b.scratch)
	b.h.Write(value)
}

// Sum returns the key of the fields added since the last Reset. It does
// not reset the builder.
func (b *KeyBuilder) Sum() Key {
	if b.h == nil {
		b.h = sha256.New()
	}
	b.sum = b.h.Sum(b.sum[:0])
	var k Key
	copy(k[:], b.sum)
	return k
}

// appendFrame appends what precedes a field's value in the hashed stream:
// the name's length, the name, and the value's length. Every part's length
// is known before the part, so the stream splits back into its fields one
// way only, and two different field sequences never hash the same bytes.
func appendFrame(dst []byte, name string, valueLen int) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	dst = append(dst, name...)
	return binary.AppendUvarint(dst, uint64(valueLen))
}
