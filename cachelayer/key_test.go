package cachelayer

import (
	"bytes"
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/blake2b"
)

type field struct {
	name  string
	value []byte
}

func keyOf(fields ...field) Key {
	var b KeyBuilder
	for _, f := range fields {
		b.Add(f.name, f.value)
	}
	return b.Sum()
}

func TestKeyBuilderDistinguishes(t *testing.T) {
	tests := []struct {
		name string
		a, b []field
	}{
		{"split between name and value", []field{{"ab", []byte("c")}}, []field{{"a", []byte("bc")}}},
		{"split between fields", []field{{"a", []byte("b")}, {"c", nil}}, []field{{"a", []byte("bc")}}},
		{"order", []field{{"a", nil}, {"b", nil}}, []field{{"b", nil}, {"a", nil}}},
		{"empty field vs none", []field{{"", nil}}, nil},
		{"value moved into next name", []field{{"q", []byte("1")}, {"r", nil}}, []field{{"q", nil}, {"1r", nil}}},
		{"length byte spoof", []field{{"a", []byte{1, 'b'}}}, []field{{"a", []byte{1}}, {"b", nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if keyOf(tt.a...) == keyOf(tt.b...) {
				t.Fatalf("%v and %v give the same key", tt.a, tt.b)
			}
		})
	}
}

func TestKeyBuilderResetAndPool(t *testing.T) {
	want := keyOf(field{"route", []byte("products")}, field{"method", []byte("GET")})

	b := AcquireKeyBuilder()
	b.Add("stale", []byte("field"))
	ReleaseKeyBuilder(b)

	b = AcquireKeyBuilder()
	defer ReleaseKeyBuilder(b)
	b.Add("route", []byte("products"))
	b.Add("method", []byte("GET"))
	if got := b.Sum(); got != want {
		t.Fatalf("pooled builder: got %v, want %v", got, want)
	}
	if got := b.Sum(); got != want {
		t.Fatalf("second Sum changed the key: %v", got)
	}
	b.Reset()
	if got := b.Sum(); got == want {
		t.Fatal("Reset kept the fields")
	}
}

func TestKeyString(t *testing.T) {
	k := Key{0x01, 0xab}
	if got, want := k.String(), "01ab0000000000000000000000000000"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func TestKeyBuilderAllocs(t *testing.T) {
	value := []byte("shoes")
	var b KeyBuilder
	assertNoAllocs(t, "building a key with a reused builder", func() {
		b.Reset()
		b.Add("route", value)
		b.Add("query.category", value)
		_ = b.Sum()
	})
}

// splitFields reads a fuzz input as a field sequence: each field is a
// one-byte name length, the name, a one-byte value length and the value.
func splitFields(b []byte) []field {
	var fs []field
	for len(b) >= 2 {
		n := min(int(b[0]), len(b)-1)
		name := string(b[1 : 1+n])
		b = b[1+n:]
		if len(b) == 0 {
			fs = append(fs, field{name: name})
			break
		}
		m := min(int(b[0]), len(b)-1)
		fs = append(fs, field{name: name, value: b[1 : 1+m]})
		b = b[1+m:]
	}
	return fs
}

func frame(fs []field) []byte {
	var out []byte
	for _, f := range fs {
		out = appendFrame(out, f.name, len(f.value))
		out = append(out, f.value...)
	}
	return out
}

func FuzzKeyBuilder(f *testing.F) {
	f.Add([]byte("\x02ab\x01c"), []byte("\x01a\x02bc"))
	f.Add([]byte("\x01a\x00\x01b\x00"), []byte("\x01b\x00\x01a\x00"))
	f.Add([]byte{}, []byte("\x00\x00"))
	f.Fuzz(func(t *testing.T, x, y []byte) {
		a, b := splitFields(x), splitFields(y)
		same := slices.EqualFunc(a, b, func(p, q field) bool {
			return p.name == q.name && bytes.Equal(p.value, q.value)
		})
		fa, fb := frame(a), frame(b)
		if bytes.Equal(fa, fb) != same {
			t.Fatalf("framing of %q and %q: equal=%v, sequences equal=%v", a, b, !same, same)
		}
		// The builder hashes exactly the framed stream.
		sum := blake2b.Sum256(fa)
		if got := keyOf(a...); !bytes.Equal(got[:], sum[:16]) {
			t.Fatalf("builder key %x is not the hash of the framing %x", got, sum[:16])
		}
		if !same && keyOf(a...) == keyOf(b...) {
			t.Fatalf("distinct sequences %q and %q share a key", a, b)
		}
	})
}

// TestRecentKeysNeverMixStreams: with far more streams than recentKeys
// has slots, so that streams share slots and replace one another, every
// Sum is still its own stream's BLAKE2b, from goroutines at once.
func TestRecentKeysNeverMixStreams(t *testing.T) {
	const streams = 4 * len(recentKeys.slots)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			var kb KeyBuilder
			var n [8]byte
			for pass := range 2 {
				for i := range streams {
					kb.Reset()
					kb.Add("route", []byte("products"))
					kb.Add("query.category", binary.BigEndian.AppendUint64(n[:0], uint64((i+g*pass*977)%streams)))
					sum := blake2b.Sum256(kb.stream)
					if got := kb.Sum(); !bytes.Equal(got[:], sum[:16]) {
						t.Errorf("stream %x: key %x, want %x", kb.stream, got, sum[:16])
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkKeyBuilder builds a hot key, one recentKeys remembers, and a
// cold one, hashed each time.
func BenchmarkKeyBuilder(b *testing.B) {
	value := []byte("shoes")
	for _, cold := range []bool{false, true} {
		name := map[bool]string{false: "hot", true: "cold"}[cold]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var seq atomic.Uint64
			b.RunParallel(func(pb *testing.PB) {
				var n [8]byte // each goroutine's own: shared, every Add wrote it at once
				limit := uint64(20)
				for pb.Next() {
					if cold {
						limit = seq.Add(1) // a stream never seen: hashed, and remembered
					}
					kb := AcquireKeyBuilder()
					kb.Add("route", value)
					kb.Add("query.category", value)
					kb.Add("query.limit", binary.LittleEndian.AppendUint64(n[:0], limit))
					_ = kb.Sum()
					ReleaseKeyBuilder(kb)
				}
			})
		})
	}
}
