package cachelayer

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// L1 is the in-process tier: a ristretto cache bounded by bytes, each
// entry costing its Size and expiring at its KeepUntil. It is safe for
// concurrent use.
type L1 struct {
	c        *ristretto.Cache[[]byte, *Entry]
	maxBytes int64
	sets     atomic.Uint64

	mu      sync.Mutex // serialises Clear and Close; protects cleared and closed
	cleared L1Stats    // counters gathered before Clear reset ristretto's
	closed  bool
}

// L1Stats counts what L1 did since it was made.
type L1Stats struct {
	Hits, Misses uint64
	// Sets counts Set calls; Admitted those ristretto took in.
	Sets, Admitted uint64
	// Dropped counts sets lost because ristretto's buffer was full;
	// Rejected, sets its admission policy refused.
	Dropped, Rejected uint64
	// Evictions counts entries pushed out to make room.
	Evictions uint64
	// BytesInUse is the cost of what L1 holds now, out of MaxBytes.
	BytesInUse, MaxBytes int64
}

// averageEntryBytes sizes ristretto's frequency counters: it wants about
// ten per entry it may hold, and our entries are mostly small JSON bodies.
const averageEntryBytes = 2 << 10

// l1Keys holds scratch copies of keys: ristretto's keys are []byte, and
// slicing the caller's Key directly would move it to the heap on every Get.
var l1Keys = sync.Pool{New: func() any { return new(Key) }}

// NewL1 returns an L1 that holds at most maxBytes of entries.
func NewL1(maxBytes int64) (*L1, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("l1: max bytes %d, want above 0", maxBytes)
	}
	counters := min(max(10*maxBytes/averageEntryBytes, 1000), 100_000_000)
	c, err := ristretto.NewCache(&ristretto.Config[[]byte, *Entry]{
		NumCounters: counters,
		MaxCost:     maxBytes,
		BufferItems: 64, // ristretto's recommended value
		Metrics:     true,
		KeyToHash:   l1Hash,
		// Entry.Size already counts the overhead of holding an entry.
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("l1: %w", err)
	}
	return &L1{c: c, maxBytes: maxBytes}, nil
}

// l1Hash splits the 16-byte key into ristretto's hash and conflict
// halves, so two keys share a slot only if all 128 bits are equal. (For
// a key whose second half is zero, ristretto skips the conflict check:
// one key in 2^64, on top of a 128-bit hash.)
func l1Hash(k []byte) (uint64, uint64) {
	return binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:16])
}

// Get returns the entry stored under k, if any. It does not allocate.
func (l *L1) Get(k Key) (*Entry, bool) {
	p := l1Keys.Get().(*Key)
	*p = k
	e, ok := l.c.Get(p[:])
	l1Keys.Put(p)
	return e, ok && e != nil
}

// Set stores e under k until e.KeepUntil (at most MaxKeep past e.Stored),
// at a cost of e.Size. It returns false when the entry has already
// expired or ristretto dropped the set; even on true, ristretto may still
// refuse the entry (counted in Stats).
func (l *L1) Set(k Key, e *Entry) bool {
	l.sets.Add(1)
	ttl := time.Duration(e.expiresAt() - time.Now().UnixNano())
	if ttl <= 0 {
		return false
	}
	return l.c.SetWithTTL(k[:], e, e.Size(), ttl)
}

// Del removes the entry under k.
func (l *L1) Del(k Key) { l.c.Del(k[:]) }

// Clear removes every entry. The counters in Stats keep counting.
func (l *L1) Clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	// ristretto resets its metrics on Clear: fold them in first. Hits
	// counted between the two steps are lost; they are few and only counts.
	l.cleared = l.statsLocked()
	l.c.Clear()
}

// Wait blocks until every Set made so far is applied or refused: ristretto
// admits entries asynchronously. For tests.
func (l *L1) Wait() { l.c.Wait() }

// Stats returns L1's counters.
func (l *L1) Stats() L1Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.statsLocked()
}

func (l *L1) statsLocked() L1Stats {
	s := l.cleared
	s.Sets = l.sets.Load()
	s.MaxBytes = l.maxBytes
	if l.closed {
		s.BytesInUse = 0
		return s
	}
	m := l.c.Metrics
	s.Hits += m.Hits()
	s.Misses += m.Misses()
	s.Admitted += m.KeysAdded()
	s.Dropped += m.SetsDropped()
	s.Rejected += m.SetsRejected()
	s.Evictions += m.KeysEvicted()
	s.BytesInUse = l.c.MaxCost() - l.c.RemainingCost()
	return s
}

// Close releases the cache and stops ristretto's goroutines. L1 must not
// be used afterwards, except for Stats.
func (l *L1) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.cleared = l.statsLocked()
	l.closed = true
	l.c.Close()
}
