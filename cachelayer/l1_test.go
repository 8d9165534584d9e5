package cachelayer

import (
	"testing"
	"time"
)

// entryFor returns a fresh entry with a body of n bytes, kept for keep.
func entryFor(n int, keep time.Duration) *Entry {
	now := time.Now().UnixNano()
	return &Entry{
		Status:     200,
		Body:       make([]byte, n),
		Stored:     now,
		FreshUntil: now + int64(keep),
		SWRUntil:   now + int64(keep),
		SIEUntil:   now + int64(keep),
	}
}

func newTestL1(t testing.TB, maxBytes int64) *L1 {
	t.Helper()
	l, err := NewL1(maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func TestNewL1Validates(t *testing.T) {
	for _, n := range []int64{0, -1} {
		if l, err := NewL1(n); err == nil {
			l.Close()
			t.Errorf("NewL1(%d) accepted", n)
		}
	}
}

func TestL1SetGetDel(t *testing.T) {
	l := newTestL1(t, 1<<20)
	a, b := Key{1}, Key{2}
	ea, eb := entryFor(10, time.Minute), entryFor(20, time.Minute)
	l.Set(a, ea)
	l.Set(b, eb)
	l.Wait()

	tests := []struct {
		name string
		k    Key
		want *Entry
	}{
		{"first", a, ea},
		{"second", b, eb},
		{"absent", Key{9}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := l.Get(tt.k)
			if got != tt.want || ok != (tt.want != nil) {
				t.Fatalf("Get = %p, %v; want %p", got, ok, tt.want)
			}
		})
	}

	l.Del(a)
	if _, ok := l.Get(a); ok {
		t.Fatal("Get after Del hit")
	}
	if got, _ := l.Get(b); got != eb {
		t.Fatal("Del removed another key")
	}
}

// Keys that share ristretto's hash half are told apart by the conflict
// half: one may crowd the other out, but never answer for it.
func TestL1KeysNeverAlias(t *testing.T) {
	l := newTestL1(t, 1<<20)
	a, b := Key{1, 2, 3, 4, 5, 6, 7, 8, 1}, Key{1, 2, 3, 4, 5, 6, 7, 8, 2}
	ea := entryFor(10, time.Minute)
	l.Set(a, ea)
	l.Wait()
	if got, ok := l.Get(b); ok {
		t.Fatalf("Get(b) answered with %p, stored under a", got)
	}
	l.Set(b, entryFor(20, time.Minute))
	l.Wait()
	if got, ok := l.Get(a); !ok || got != ea {
		t.Fatalf("Get(a) = %p, %v after setting b; want a's entry", got, ok)
	}
	if got, ok := l.Get(b); ok && got == ea {
		t.Fatal("Get(b) answered with a's entry")
	}
}

func TestL1Expiry(t *testing.T) {
	l := newTestL1(t, 1<<20)
	if l.Set(Key{1}, entryFor(1, -time.Second)) {
		t.Fatal("Set took an entry that had already expired")
	}
	l.Set(Key{2}, entryFor(1, 30*time.Millisecond))
	l.Wait()
	if _, ok := l.Get(Key{2}); !ok {
		t.Fatal("entry missing before its KeepUntil")
	}
	time.Sleep(50 * time.Millisecond)
	if _, ok := l.Get(Key{2}); ok {
		t.Fatal("entry still served after its KeepUntil")
	}
}

func TestL1BoundedByBytes(t *testing.T) {
	const maxBytes = 64 << 10
	l := newTestL1(t, maxBytes)
	e := entryFor(4<<10, time.Minute) // ~4.3 KiB with overhead: 15 fit
	for i := range 200 {
		l.Set(Key{byte(i), byte(i >> 8)}, e)
		if i%16 == 0 {
			l.Wait()
		}
	}
	l.Wait()
	s := l.Stats()
	if s.BytesInUse > maxBytes || s.BytesInUse < e.Size() {
		t.Fatalf("BytesInUse = %d, want between %d and %d", s.BytesInUse, e.Size(), maxBytes)
	}
	if s.Evictions+s.Rejected+s.Dropped == 0 {
		t.Fatalf("200 entries of %d bytes in %d and nothing evicted or refused: %+v", e.Size(), maxBytes, s)
	}
	if s.Sets != 200 || s.MaxBytes != maxBytes {
		t.Fatalf("Sets = %d, MaxBytes = %d", s.Sets, s.MaxBytes)
	}
	if l.Set(Key{0xff}, entryFor(maxBytes, time.Minute)) {
		l.Wait()
	}
	if _, ok := l.Get(Key{0xff}); ok {
		t.Fatal("an entry larger than L1 was stored")
	}
}

func TestL1StatsSurviveClear(t *testing.T) {
	l := newTestL1(t, 1<<20)
	l.Set(Key{1}, entryFor(1, time.Minute))
	l.Wait()
	l.Get(Key{1})
	l.Get(Key{2})
	l.Clear()
	if _, ok := l.Get(Key{1}); ok {
		t.Fatal("hit after Clear")
	}
	s := l.Stats()
	if s.Hits != 1 || s.Misses != 2 || s.Admitted != 1 || s.BytesInUse != 0 {
		t.Fatalf("after Clear: %+v; want 1 hit, 2 misses, 1 admitted, 0 bytes", s)
	}
	l.Close()
	l.Close()
	if s := l.Stats(); s.Hits != 1 || s.Misses != 2 {
		t.Fatalf("after Close: %+v", s)
	}
}

func TestL1GetAllocs(t *testing.T) {
	l := newTestL1(t, 1<<20)
	l.Set(Key{1}, entryFor(100, time.Minute))
	l.Wait()
	assertNoAllocs(t, "an L1 hit", func() {
		if _, ok := l.Get(Key{1}); !ok {
			t.Fatal("miss")
		}
	})
	assertNoAllocs(t, "an L1 miss", func() { l.Get(Key{2}) })
}

func BenchmarkL1Get(b *testing.B) {
	l := newTestL1(b, 64<<20)
	keys := make([]Key, 1024)
	for i := range keys {
		keys[i] = Key{byte(i), byte(i >> 8), 7}
		l.Set(keys[i], entryFor(512, time.Hour))
	}
	l.Wait()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Get(keys[i&1023])
			i++
		}
	})
}
