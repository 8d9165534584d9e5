package cachelayer

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// newReplica returns a Cache on the Valkey at addr under prefix: two
// replicas given the same prefix share their L2 and hear each other.
func newReplica(t testing.TB, addr, prefix string, l1Bytes int64) *Cache {
	t.Helper()
	c, err := New(configs.Cache{
		L1: configs.L1{MaxBytes: configs.ByteSize(l1Bytes)},
		L2: configs.L2{Addrs: []string{addr}, KeyPrefix: prefix, Timeout: testL2Timeout},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// sharedReplicas returns two replicas on the shared test Valkey, under a
// prefix of the test's own, and a function that starts more of them.
func sharedReplicas(t *testing.T) (a, b *Cache, another func() *Cache) {
	t.Helper()
	addr := servicetest.RedisAddr(t)
	prefix := servicetest.KeyPrefix(t)
	another = func() *Cache { return newReplica(t, addr, prefix, 1<<20) }
	return another(), another(), another
}

func TestCacheL2HitFillsL1(t *testing.T) {
	servicetest.CheckGoroutines(t)
	a, b, _ := sharedReplicas(t)
	ctx := context.Background()
	tags := []string{"products"}

	stored := fill(a, Key{1}, "/api/vultr/postgres/products", tags...)
	e, tier, cur := b.Lookup(ctx, Key{1}, tags, nil)
	if e == nil || tier != TierL2 || string(e.Body) != string(stored.Body) || len(cur) != 1 {
		t.Fatalf("other replica: %v, %v, %v; want an L2 hit", e, tier, cur)
	}
	b.WaitForTest()
	if _, tier, _ := b.Lookup(ctx, Key{1}, tags, nil); tier != TierL1 {
		t.Fatalf("second lookup from %v, want l1 (filled by the L2 hit)", tier)
	}
	left := time.Duration(stored.KeepUntil() - time.Now().UnixNano())
	k := Key{1}
	ttl, ok := b.l1.c.GetTTL(k[:])
	// ristretto reads its own clock, a moment apart from this test's:
	// allow it 10ms either way of the second the window spans.
	if !ok || ttl > left+10*time.Millisecond || ttl < left-time.Second {
		t.Fatalf("L1 keeps the L2 hit for %v, want its remaining %v", ttl, left)
	}
}

func TestCacheInvalidateReachesReplicas(t *testing.T) {
	a, b, another := sharedReplicas(t)
	ctx := context.Background()
	tags := []string{"user:42"}
	lags := make(chan time.Duration, 1)
	b.OnInvalidationLag(func(d time.Duration) { lags <- d })

	fill(a, Key{1}, "/api/vultr/postgres/users/42/profile", tags...)
	if _, tier, _ := b.Lookup(ctx, Key{1}, tags, nil); tier != TierL2 {
		t.Fatalf("b's first lookup from %v, want l2", tier)
	}
	b.WaitForTest()
	if _, tier, _ := b.Lookup(ctx, Key{1}, tags, nil); tier != TierL1 {
		t.Fatalf("b's second lookup from %v, want l1", tier)
	}

	floor := versionFloor(time.Now().UnixNano())
	if err := a.Invalidate(ctx, "user:42"); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := a.Lookup(ctx, Key{1}, tags, nil); e != nil {
		t.Fatal("the invalidating replica still answers with the entry")
	}
	eventually(t, "invalidated on the other replica", func() bool {
		return b.Stats().InvalidationsReceived == 1
	})
	e, tier, cur := b.Lookup(ctx, Key{1}, tags, nil)
	if e != nil || tier != TierNone || cur[0] < floor {
		t.Fatalf("b after the invalidation: %v, %v, versions %v; want a miss at version %d or more", e, tier, cur, floor)
	}
	if lag := <-lags; lag <= 0 || lag > time.Second {
		t.Errorf("invalidation lag %v, want a measured moment under a second", lag)
	}
	if s := a.Stats(); s.InvalidationsReceived != 0 || s.InvalidationsSent != 1 {
		t.Fatalf("a counted its own invalidation as received: %+v", s)
	}

	// A third replica, started after the invalidation, finds the version
	// in L2 with the entry, in the same round trip.
	c := another()
	if e, _, cur := c.Lookup(ctx, Key{1}, tags, nil); e != nil || cur[0] < floor {
		t.Fatalf("a late replica: %v, versions %v; want a miss at version %d or more", e, cur, floor)
	}
}

// Valkey may lose tag versions (a restart without persistence, an
// eviction); an invalidation after that must still void what replicas
// stamped with the versions they had seen.
func TestCacheInvalidateAfterValkeyLostVersions(t *testing.T) {
	a, b, _ := sharedReplicas(t)
	ctx := context.Background()
	tags := []string{"products"}
	if err := a.Invalidate(ctx, "products"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "heard on b", func() bool { return b.Stats().InvalidationsReceived == 1 })
	if err := rawClient(t, servicetest.RedisAddr(t)).Del(ctx, a.l2.tagKey("products")).Err(); err != nil {
		t.Fatal(err)
	}
	fill(b, Key{1}, "/api/vultr/postgres/products", tags...) // stamped with what b had heard
	time.Sleep(2 * time.Millisecond)                         // versions floor at the millisecond
	if err := a.Invalidate(ctx, "products"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "heard on b again", func() bool { return b.Stats().InvalidationsReceived == 2 })
	if e, tier, _ := b.Lookup(ctx, Key{1}, tags, nil); e != nil {
		t.Fatalf("b still answers from %v after the second invalidation", tier)
	}
}

func TestCacheBanAndDeleteReachReplicas(t *testing.T) {
	a, b, another := sharedReplicas(t)
	ctx := context.Background()

	fill(a, Key{1}, "/api/vultr/postgres/products")
	fill(a, Key{2}, "/api/raindrop/search-memory")
	for _, k := range []Key{{1}, {2}} {
		b.Lookup(ctx, k, nil, nil)
	}
	b.WaitForTest()

	time.Sleep(time.Millisecond)
	if err := a.Ban(ctx, "/api/vultr/"); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, Key{2}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "told of the ban and the delete", func() bool {
		s := b.Stats()
		return s.BansReceived == 1 && s.DeletesReceived == 1
	})
	for _, k := range []Key{{1}, {2}} {
		if e, tier, _ := b.Lookup(ctx, k, nil, nil); e != nil {
			t.Errorf("b still answers %v from %v", k, tier)
		}
	}

	late := another()
	if n := late.Stats().Bans; n != 1 {
		t.Fatalf("a replica started after the ban has %d bans, want 1 loaded from L2", n)
	}
}

func TestCacheCorruptL2ValueIsACountedMiss(t *testing.T) {
	addr := servicetest.RedisAddr(t)
	prefix := servicetest.KeyPrefix(t)
	c := newReplica(t, addr, prefix, 1<<20)
	raw := rawClient(t, addr)
	ctx := context.Background()
	if err := raw.Set(ctx, c.l2.entryKey(Key{7}), "\x01garbage", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	e, tier, _ := c.Lookup(ctx, Key{7}, nil, nil)
	if e != nil || tier != TierNone {
		t.Fatalf("Lookup = %v, %v; want a miss", e, tier)
	}
	if s := c.Stats().L2; s.Corrupt != 1 || s.Misses != 1 || s.Errors != 0 {
		t.Fatalf("L2 stats = %+v; want 1 corrupt miss, no error", s)
	}
}

// Losing the subscription clears L1 at once, and again when it is back.
func TestCacheSubscriptionLossClearsL1(t *testing.T) {
	servicetest.CheckGoroutines(t)
	srv := servicetest.StartRedisServer(t)
	c := newReplica(t, srv.Addr, "sheepdog-test:", 1<<20)
	ctx := context.Background()
	// New waits at most a second for the subscription; on a loaded
	// machine it may come later, and its arrival clears L1 too. So the
	// test first sees it live: another replica's invalidation arrives.
	other := newReplica(t, srv.Addr, "sheepdog-test:", 1<<20)
	eventually(t, "subscribed", func() bool {
		_ = other.Invalidate(ctx, "probe")
		return c.Stats().InvalidationsReceived > 0
	})
	base := c.Stats().L1Flushes

	fill(c, Key{1}, "/a")
	srv.Stop()
	eventually(t, "flushed after the subscription dropped", func() bool {
		return c.Stats().L1Flushes == base+1
	})
	if _, ok := c.l1.Get(Key{1}); ok {
		t.Fatal("L1 still holds an entry after the flush")
	}
	// While down, L1 still serves what is filled meanwhile.
	c.Store(Key{2}, fetched("/b", time.Now().UnixNano(), time.Minute, nil, nil))
	c.l1.Wait()
	if _, tier, _ := c.Lookup(ctx, Key{2}, nil, nil); tier != TierL1 {
		t.Fatalf("with Valkey down, a fresh fill comes from %v, want l1", tier)
	}

	srv.Start()
	eventually(t, "flushed again once resubscribed", func() bool {
		return c.Stats().L1Flushes == base+2
	})
	if _, ok := c.l1.Get(Key{2}); ok {
		t.Fatal("an entry filled while unsubscribed survived the second flush")
	}
}

// With Valkey killed, lookups cost next to nothing once the breaker is
// open, nothing fails, health says degraded, and L2 serves again once
// Valkey is back.
func TestCacheL2Outage(t *testing.T) {
	servicetest.CheckGoroutines(t)
	srv := servicetest.StartRedisServer(t)
	a := newReplica(t, srv.Addr, "sheepdog-test:", 1<<20)
	ctx := context.Background()
	tags := []string{"products"}
	versions := make([]uint64, 0, 4)

	srv.Stop()
	for i := range breakerFailures {
		if e, tier, _ := a.Lookup(ctx, Key{byte(i)}, tags, versions[:0]); e != nil || tier != TierNone {
			t.Fatalf("lookup %d with Valkey down: %v, %v", i, e, tier)
		}
	}
	const calls = 1000
	start := time.Now()
	for i := range calls {
		_, _, cur := a.Lookup(ctx, Key{byte(i)}, tags, versions[:0])
		if len(cur) != 1 {
			t.Fatalf("no versions to stamp with: %v", cur)
		}
	}
	perCall := time.Since(start) / calls
	t.Logf("lookup with Valkey down and the breaker open: %v", perCall)
	if perCall > 50*time.Microsecond {
		t.Fatalf("a lookup with the breaker open costs %v", perCall)
	}
	if h, ok := a.L2Health(); !ok || h.State != StateDegraded {
		t.Fatalf("L2Health = %+v, %v; want degraded", h, ok)
	}
	if err := a.Invalidate(ctx, "products"); err == nil {
		t.Fatal("Invalidate with Valkey down reported no error")
	}
	if _, _, cur := a.Lookup(ctx, Key{1}, tags, nil); cur[0] == 0 {
		t.Fatal("a failed Invalidate did not bump the local version")
	}

	srv.Start()
	eventually(t, "healthy again", func() bool {
		h, _ := a.L2Health()
		return h.State == StateOK
	})
	fill(a, Key{9}, "/api/vultr/postgres/products", tags...)
	b := newReplica(t, srv.Addr, "sheepdog-test:", 1<<20)
	if e, tier, _ := b.Lookup(ctx, Key{9}, tags, nil); e == nil || tier != TierL2 {
		t.Fatalf("after the restart: %v from %v, want an L2 hit", e, tier)
	}
	if s := a.Stats().L2; s.BreakerOpens == 0 || s.Skipped == 0 || s.Written == 0 {
		t.Fatalf("L2 stats = %+v; want breaker opens, skipped calls and writes", s)
	}
}

// A replica starts while Valkey is down: it starts anyway, serves, and
// takes up L2 and the subscription once Valkey is there (clearing what L1
// filled unsubscribed).
func TestCacheStartsWithValkeyDown(t *testing.T) {
	servicetest.CheckGoroutines(t)
	srv := servicetest.StartRedisServer(t)
	srv.Stop()
	start := time.Now()
	c := newReplica(t, srv.Addr, "sheepdog-test:", 1<<20)
	if d := time.Since(start); d > subscribeWait+500*time.Millisecond {
		t.Fatalf("New took %v with Valkey down", d)
	}
	ctx := context.Background()
	fill(c, Key{1}, "/a")
	if _, tier, _ := c.Lookup(ctx, Key{1}, nil, nil); tier != TierL1 {
		t.Fatalf("with Valkey down: from %v, want l1", tier)
	}
	srv.Start()
	eventually(t, "subscribed, L1 cleared", func() bool { return c.Stats().L1Flushes == 1 })
	if e, _, _ := c.Lookup(ctx, Key{1}, nil, nil); e != nil {
		t.Fatal("an entry filled unsubscribed survived")
	}
}

// 64 goroutines looking up through L2 (L1 too small to keep anything).
func TestCacheConcurrentL2Lookups(t *testing.T) {
	addr := servicetest.RedisAddr(t)
	prefix := servicetest.KeyPrefix(t)
	writer := newReplica(t, addr, prefix, 1<<20)
	reader := newReplica(t, addr, prefix, 64) // no entry fits: every hit is L2's
	const keys, workers, perWorker = 16, 64, 40
	tags := []string{"products"}
	for i := range keys {
		fill(writer, Key{byte(i)}, "/p", tags...)
	}

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			versions := make([]uint64, 0, 1)
			for i := range perWorker {
				if e, tier, _ := reader.Lookup(context.Background(), Key{byte((w + i) % keys)}, tags, versions); tier != TierL2 || e == nil {
					errs <- errors.New("lookup was not an L2 hit")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s := reader.Stats().L2; s.Hits != workers*perWorker || s.Errors != 0 {
		t.Fatalf("L2 stats = %+v; want %d hits", s, workers*perWorker)
	}
}

// TestCacheSubscriptionBacksOff: a subscription that comes up but cannot
// read the bans (here the bans key holds a string) is retried with a
// growing backoff, not every 50ms, and the fault is logged once.
func TestCacheSubscriptionBacksOff(t *testing.T) {
	addr := servicetest.RedisAddr(t)
	prefix := servicetest.KeyPrefix(t)
	raw := rawClient(t, addr)
	if err := raw.Set(context.Background(), prefix+"bans", "not a sorted set", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	var mu sync.Mutex
	c, err := New(configs.Cache{
		L1: configs.L1{MaxBytes: 1 << 20},
		L2: configs.L2{Addrs: []string{addr}, KeyPrefix: prefix, Timeout: testL2Timeout},
	}, slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	time.Sleep(2 * time.Second)
	// 50ms doubling to 1s: about 6 tries in 2s; every 50ms would be 40.
	if n := c.Stats().L1Flushes; n > 10 {
		t.Errorf("%d L1 clears in 2s: the resubscription does not back off", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logged.String(), "subscription lost"); n != 1 {
		t.Errorf("the same fault was logged %d times, want once:\n%s", n, logged.String())
	}
}

// lockedWriter serialises writes to a builder read by the test.
type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
