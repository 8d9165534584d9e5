package cachelayer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// newL1Cache returns a Cache without L2, closed when the test ends.
func newL1Cache(t testing.TB) *Cache {
	t.Helper()
	c, err := New(configs.Cache{L1: configs.L1{MaxBytes: 16 << 20}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// fetched builds the entry an upstream fetch that started at stored would
// produce for path, stamped with versions.
func fetched(path string, stored int64, keep time.Duration, tags []string, versions []uint64) *Entry {
	return &Entry{
		Status:      200,
		Body:        []byte(`{"success":true}`),
		Stored:      stored,
		FreshUntil:  stored + int64(keep),
		SWRUntil:    stored + int64(keep),
		SIEUntil:    stored + int64(keep),
		Tags:        tags,
		TagVersions: versions,
		Path:        path,
	}
}

// fill does what the proxy does on a miss: stamp, fetch, store.
func fill(c *Cache, k Key, path string, tags ...string) *Entry {
	e := fetched(path, time.Now().UnixNano(), time.Minute, tags, c.VersionsFor(tags, nil))
	c.Store(k, e)
	c.WaitForTest()
	return e
}

func TestCacheL1OnlyLookup(t *testing.T) {
	servicetest.CheckGoroutines(t)
	c := newL1Cache(t)
	ctx := context.Background()
	tags := []string{"products"}

	e, tier, cur := c.Lookup(ctx, Key{1}, tags, nil)
	if e != nil || tier != TierNone || len(cur) != 1 || cur[0] != 0 {
		t.Fatalf("cold Lookup = %v, %v, %v; want a miss with versions [0]", e, tier, cur)
	}
	stored := fill(c, Key{1}, "/api/vultr/postgres/products", tags...)
	e, tier, _ = c.Lookup(ctx, Key{1}, tags, nil)
	if e != stored || tier != TierL1 {
		t.Fatalf("Lookup after Store = %p, %v; want %p, l1", e, tier, stored)
	}
	if hl, ok := c.L2Health(); ok {
		t.Fatalf("L2Health without L2 = %+v, true", hl)
	}
}

func TestCacheInvalidate(t *testing.T) {
	ctx := context.Background()
	path := "/api/vultr/postgres/users/42/profile"
	tests := []struct {
		name string
		run  func(t *testing.T, c *Cache) (k Key, wantHit bool)
	}{
		{"entry stored before the write is void", func(t *testing.T, c *Cache) (Key, bool) {
			fill(c, Key{1}, path, "user:42", "products")
			if err := c.Invalidate(ctx, "user:42"); err != nil {
				t.Fatal(err)
			}
			return Key{1}, false
		}},
		{"a write during the fetch voids its entry", func(t *testing.T, c *Cache) (Key, bool) {
			tags := []string{"user:42"}
			_, _, stamp := c.Lookup(ctx, Key{2}, tags, nil) // the fetch starts
			if err := c.Invalidate(ctx, "user:42"); err != nil {
				t.Fatal(err)
			}
			c.Store(Key{2}, fetched(path, time.Now().UnixNano(), time.Minute, tags, stamp)) // it ends
			c.WaitForTest()
			if got := c.Stats().Refused; got != 1 {
				t.Fatalf("Refused = %d, want 1", got)
			}
			return Key{2}, false
		}},
		{"other tags are untouched", func(t *testing.T, c *Cache) (Key, bool) {
			fill(c, Key{3}, path, "user:7")
			if err := c.Invalidate(ctx, "user:42"); err != nil {
				t.Fatal(err)
			}
			return Key{3}, true
		}},
		{"an entry stamped after the write is valid", func(t *testing.T, c *Cache) (Key, bool) {
			if err := c.Invalidate(ctx, "user:42"); err != nil {
				t.Fatal(err)
			}
			fill(c, Key{4}, path, "user:42")
			return Key{4}, true
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newL1Cache(t)
			k, wantHit := tt.run(t, c)
			e, tier, _ := c.Lookup(ctx, k, nil, nil)
			if (e != nil) != wantHit || (tier == TierL1) != wantHit {
				t.Fatalf("Lookup = %v, %v; want hit %v", e, tier, wantHit)
			}
			if !wantHit {
				if got := c.Stats().Invalid + c.Stats().Refused; got != 1 {
					t.Fatalf("Invalid+Refused = %d, want 1", got)
				}
				if _, ok := c.l1.Get(k); ok {
					t.Fatal("the void entry is still in L1")
				}
			}
		})
	}
}

func TestCacheBan(t *testing.T) {
	c := newL1Cache(t)
	ctx := context.Background()
	fill(c, Key{1}, "/api/vultr/postgres/products")
	fill(c, Key{2}, "/api/raindrop/search-memory")
	time.Sleep(time.Millisecond) // ban times round up to the millisecond
	if err := c.Ban(ctx, "/api/vultr/"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	fill(c, Key{3}, "/api/vultr/postgres/orders")

	tests := []struct {
		k   Key
		hit bool
	}{{Key{1}, false}, {Key{2}, true}, {Key{3}, true}}
	for _, tt := range tests {
		t.Run(tt.k.String(), func(t *testing.T) {
			if e, _, _ := c.Lookup(ctx, tt.k, nil, nil); (e != nil) != tt.hit {
				t.Fatalf("Lookup = %v, want hit %v", e, tt.hit)
			}
		})
	}
	if s := c.Stats(); s.Bans != 1 || s.BansSent != 1 || s.Invalid != 1 {
		t.Fatalf("Stats: %d bans, %d sent, %d invalid; want 1, 1, 1", s.Bans, s.BansSent, s.Invalid)
	}
}

func TestCacheDeleteAndExpiry(t *testing.T) {
	c := newL1Cache(t)
	ctx := context.Background()
	fill(c, Key{1}, "/a")
	if err := c.Delete(ctx, Key{1}); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := c.Lookup(ctx, Key{1}, nil, nil); e != nil {
		t.Fatal("hit after Delete")
	}

	now := time.Now().UnixNano()
	c.Store(Key{2}, fetched("/b", now, 30*time.Millisecond, nil, nil))
	c.Store(Key{3}, fetched("/c", now-int64(MaxKeep), time.Hour+MaxKeep, nil, nil))
	c.WaitForTest()
	if e, _, _ := c.Lookup(ctx, Key{2}, nil, nil); e == nil {
		t.Fatal("miss before the entry's KeepUntil")
	}
	if e, _, _ := c.Lookup(ctx, Key{3}, nil, nil); e != nil {
		t.Fatal("an entry stored MaxKeep ago was kept")
	}
	time.Sleep(50 * time.Millisecond)
	if e, _, _ := c.Lookup(ctx, Key{2}, nil, nil); e != nil {
		t.Fatal("hit after the entry's KeepUntil")
	}
}

func TestCacheLookupL1Allocs(t *testing.T) {
	c := newL1Cache(t)
	tags := []string{"products", "user:42"}
	fill(c, Key{1}, "/api/vultr/postgres/products", tags...)
	versions := make([]uint64, 0, 8)
	ctx := context.Background()
	assertNoAllocs(t, "an L1 hit through Cache.Lookup", func() {
		if e, tier, _ := c.Lookup(ctx, Key{1}, tags, versions[:0]); e == nil || tier != TierL1 {
			t.Fatal("miss")
		}
	})
}

func TestTierString(t *testing.T) {
	tests := []struct {
		tier Tier
		want string
	}{{TierNone, "none"}, {TierL1, "l1"}, {TierL2, "l2"}, {Tier(9), "none"}}
	for _, tt := range tests {
		if got := tt.tier.String(); got != tt.want {
			t.Errorf("Tier(%d).String() = %q, want %q", tt.tier, got, tt.want)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	c, err := New(configs.Cache{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Stats().L1.MaxBytes; got != defaultL1Bytes {
		t.Fatalf("L1 MaxBytes = %d, want the default %d", got, defaultL1Bytes)
	}
	if _, err := New(configs.Cache{L1: configs.L1{MaxBytes: -1}}, nil); err == nil {
		t.Fatal("New accepted a negative L1 size")
	}
	if _, err := New(configs.Cache{L2: configs.L2{Addrs: []string{"127.0.0.1:1"}, Timeout: -1}}, nil); err == nil {
		t.Fatal("New accepted a negative L2 timeout")
	}
}

// A flush (the subscription dropping) lands while requests run: nothing
// races, and lookups after it miss.
func TestCacheFlushUnderLoad(t *testing.T) {
	servicetest.CheckGoroutines(t)
	c := newL1Cache(t)
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			versions := make([]uint64, 0, 1)
			tags := []string{"products"}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := Key{byte(w), byte(i)}
				if e, _, cur := c.Lookup(ctx, k, tags, versions[:0]); e == nil {
					c.Store(k, fetched("/p", time.Now().UnixNano(), time.Minute, tags, cur))
				}
			}
		}()
	}
	for range 20 {
		c.flushL1()
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	c.flushL1()
	if e, _, _ := c.Lookup(ctx, Key{0, 1}, nil, nil); e != nil {
		t.Fatal("hit after a flush with no store since")
	}
	if got := c.Stats().L1Flushes; got != 21 {
		t.Fatalf("L1Flushes = %d, want 21", got)
	}
}

// TestStoreVisibleAtOnce: a Lookup right after Store finds the entry, with
// no wait in between, so a coalesced miss ends with its answer in L1.
func TestStoreVisibleAtOnce(t *testing.T) {
	c := newL1Cache(t)
	for i := range 200 {
		k := Key{byte(i), byte(i >> 8), 7}
		c.Store(k, fetched("/p", time.Now().UnixNano(), time.Minute, nil, nil))
		if e, tier, _ := c.Lookup(context.Background(), k, nil, nil); e == nil || tier != TierL1 {
			t.Fatalf("store %d: Lookup right after Store found %v in %v", i, e, tier)
		}
	}
}
