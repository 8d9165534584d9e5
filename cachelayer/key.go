package cachelayer

import (
	"encoding/binary"
	"encoding/hex"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/blake2b"
)

// Key identifies one cached answer: the first 16 bytes of a BLAKE2b-256
// over the request fields that make up the key. BLAKE2b, not SHA-256:
// both resist collisions, and on CPUs without SHA extensions BLAKE2b
// hashes a key's 100–200 bytes in about a third of the time, on a path
// every cache hit takes. It is shown only as hex, and
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
	stream []byte // the framed fields added since Reset
}

// maxPooledStream bounds the stream a pooled builder keeps: a key made
// of a large body's fields does not pin that much memory in the pool.
const maxPooledStream = 64 << 10

var keyBuilders = sync.Pool{New: func() any { return new(KeyBuilder) }}

// AcquireKeyBuilder returns a reset builder from a pool. Give it back with
// ReleaseKeyBuilder when the key is built.
func AcquireKeyBuilder() *KeyBuilder {
	b := keyBuilders.Get().(*KeyBuilder)
	b.Reset()
	return b
}

// ReleaseKeyBuilder returns b to the pool; b must not be used afterwards.
func ReleaseKeyBuilder(b *KeyBuilder) {
	if cap(b.stream) > maxPooledStream {
		b.stream = nil
	}
	keyBuilders.Put(b)
}

// Reset forgets every field added so far.
func (b *KeyBuilder) Reset() { b.stream = b.stream[:0] }

// Add appends one field. A nil and an empty value are the same field.
func (b *KeyBuilder) Add(name string, value []byte) {
	b.stream = append(appendFrame(b.stream, name, len(value)), value...)
}

// Sum returns the key of the fields added since the last Reset. It does
// not reset the builder.
func (b *KeyBuilder) Sum() Key {
	slot := &recentKeys.slots[maphash.Bytes(recentKeys.seed, b.stream)%uint64(len(recentKeys.slots))]
	if r := slot.Load(); r != nil && r.stream == string(b.stream) {
		return r.key
	}
	sum := blake2b.Sum256(b.stream)
	k := Key(sum[:16])
	if len(b.stream) <= maxRecentStream {
		slot.Store(&recentKey{stream: string(b.stream), key: k})
	}
	return k
}

// recentKeys remembers the keys of recently hashed field streams, so that
// a hot key costs a lookup here rather than a BLAKE2b (a tenth of a
// cache hit's CPU). A slot is chosen by a hash seeded per process and
// holds the whole stream, compared byte for byte: the table changes how
// fast a Key comes, never which. A stream that lands on a taken slot
// replaces what was there.
var recentKeys struct {
	seed  maphash.Seed
	slots [4096]atomic.Pointer[recentKey]
}

func init() { recentKeys.seed = maphash.MakeSeed() }

type recentKey struct {
	stream string
	key    Key
}

// maxRecentStream is the longest stream recentKeys keeps: longer ones
// (a large body's fields) are hashed each time.
const maxRecentStream = 512

// appendFrame appends what precedes a field's value in the hashed stream:
// the name's length, the name, and the value's length. Every part's length
// is known before the part, so the stream splits back into its fields one
// way only, and two different field sequences never hash the same bytes.
func appendFrame(dst []byte, name string, valueLen int) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	dst = append(dst, name...)
	return binary.AppendUvarint(dst, uint64(valueLen))
}
