package cachelayer

import (
	"context"
	"testing"
	"time"

	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// benchKeys fills c with n entries of a 1 KiB body, tagged "products".
func benchKeys(b *testing.B, c *Cache, n int) []Key {
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = Key{byte(i), byte(i >> 8), 0x5e}
		fill(c, keys[i], "/api/vultr/postgres/products", "products")
	}
	return keys
}

// BenchmarkCacheLookupL1 is the hit path the proxy takes for a hot key:
// L1, versions check, bans check. It must report 0 allocs/op.
func BenchmarkCacheLookupL1(b *testing.B) {
	c := newL1Cache(b)
	keys := benchKeys(b, c, 256)
	tags := []string{"products"}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		versions := make([]uint64, 0, 4)
		i := 0
		for pb.Next() {
			if _, tier, _ := c.Lookup(ctx, keys[i&255], tags, versions[:0]); tier != TierL1 {
				b.Fatal("not an L1 hit")
			}
			i++
		}
	})
}

// BenchmarkCacheLookupL2 is the hit path through the real Valkey (L1 too
// small to keep anything): lookups share MGETs, one a round trip, from
// 32 goroutines per core.
func BenchmarkCacheLookupL2(b *testing.B) {
	reader, keys := l2BenchKeys(b)
	tags := []string{"products"}
	b.SetParallelism(32) // 64 goroutines on the project's 2 cores, as clients would be
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		versions := make([]uint64, 0, 4)
		i := 0
		for pb.Next() {
			if _, tier, _ := reader.Lookup(ctx, keys[i&255], tags, versions[:0]); tier != TierL2 {
				b.Fatal("not an L2 hit")
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lookups/s")
}

// BenchmarkCacheLookupL2Lone is one L2 hit at a time: the latency of a
// lookup on an otherwise idle process, round trip included.
func BenchmarkCacheLookupL2Lone(b *testing.B) {
	reader, keys := l2BenchKeys(b)
	tags := []string{"products"}
	ctx := context.Background()
	versions := make([]uint64, 0, 4)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, tier, _ := reader.Lookup(ctx, keys[i&255], tags, versions[:0]); tier != TierL2 {
			b.Fatal("not an L2 hit")
		}
		i++
	}
}

// l2BenchKeys writes 256 entries to the real Valkey through one replica and
// returns another whose L1 is too small to keep any, so every lookup of
// those keys is an L2 hit.
func l2BenchKeys(b *testing.B) (*Cache, []Key) {
	addr := servicetest.RedisAddr(b)
	prefix := servicetest.KeyPrefix(b)
	writer := newReplica(b, addr, prefix, 1<<20)
	return newReplica(b, addr, prefix, 64), benchKeys(b, writer, 256)
}
