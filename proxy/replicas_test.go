package proxy

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

func l2Block(addr, prefix string) string {
	return fmt.Sprintf(`addrs: ["%s"], key_prefix: "%s", timeout: 100ms`, addr, prefix)
}

// TestTwoReplicasShareL2: a miss through one Sheepdog fills Valkey; the
// same GET through a second Sheepdog is an L2 hit, so the app is asked
// once. A write through the second then drops the first's L1 copy too.
func TestTwoReplicasShareL2(t *testing.T) {
	redisAddr := servicetest.RedisAddr(t)
	prefix := servicetest.KeyPrefix(t)
	app, originAddr := startOrigin(t)
	a, addrA, _ := startProxy(t, cacheConfig(t, originAddr, l2Block(redisAddr, prefix)))
	_, addrB, _ := startProxy(t, cacheConfig(t, originAddr, l2Block(redisAddr, prefix)))
	ca, cb := rawClient(addrA), rawClient(addrB)

	const profile = "/api/vultr/postgres/users/user_5/profile"
	fasthttp.ReleaseResponse(get(t, ca, "GET", profile))
	a.cache.WaitForTest() // A's L2 write is queued, not awaited by the answer
	resp := get(t, cb, "GET", profile)
	if got := string(resp.Header.Peek("X-Cache")); got != "HIT" {
		t.Errorf("second replica: X-Cache %q, want HIT from L2", got)
	}
	fasthttp.ReleaseResponse(resp)
	if got := count(app, "profile.get"); got != 1 {
		t.Fatalf("%d upstream requests through two replicas; want 1", got)
	}

	// A write through B invalidates the profile on A as well.
	fasthttp.ReleaseResponse(get(t, ca, "GET", profile)) // in A's L1 now
	w := get(t, cb, "POST", profile, "Content-Type", "application/json", "body", `{"preferences":{"fit":"slim"}}`)
	if w.StatusCode() != 200 {
		t.Fatalf("write: %d %s", w.StatusCode(), w.Body())
	}
	fasthttp.ReleaseResponse(w)
	deadline := time.Now().Add(2 * time.Second)
	for {
		resp := get(t, ca, "GET", profile)
		x := string(resp.Header.Peek("X-Cache"))
		fasthttp.ReleaseResponse(resp)
		if x == "MISS" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica A still answers %s 2s after B's write", x)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestValkeyOutage: Valkey killed under a bounded load, then restarted.
// No client sees a 5xx, /health says l2 is degraded meanwhile, and L2 is
// used again once Valkey is back.
func TestValkeyOutage(t *testing.T) {
	redis := servicetest.StartRedisServer(t)
	_, originAddr := startOrigin(t)
	p, addr, admin := startProxy(t, cacheConfig(t, originAddr, l2Block(redis.Addr, "sheepdog:")))
	c := rawClient(addr)
	c.MaxConns = 64

	var served, fivexx atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// A mix of repeated keys (hits) and new ones (misses, fills).
				uri := fmt.Sprintf("/api/vultr/postgres/products?category=c%d&limit=%d", (w*7+i)%40, i%3+1)
				resp := get(t, c, "GET", uri)
				served.Add(1)
				if resp.StatusCode() >= 500 {
					fivexx.Add(1)
				}
				fasthttp.ReleaseResponse(resp)
			}
		}()
	}
	health := func() Health {
		var h Health
		getJSON(t, admin, "/health", &h)
		return h
	}
	time.Sleep(500 * time.Millisecond)
	if h := health(); h.Dependencies["l2"].State != "ok" {
		t.Errorf("before the outage: l2 %+v", h.Dependencies["l2"])
	}
	redis.Stop()
	time.Sleep(1500 * time.Millisecond)
	down := health()
	if down.Status != "degraded" || down.Dependencies["l2"].State == "ok" {
		t.Errorf("during the outage: %+v", down)
	}
	redis.Start()
	before := p.cache.Stats().L2
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	after := p.cache.Stats().L2
	if h := health(); h.Dependencies["l2"].State != "ok" {
		t.Errorf("after Valkey came back: l2 %+v", h.Dependencies["l2"])
	}
	if after.Hits+after.Misses <= before.Hits+before.Misses {
		t.Errorf("L2 not used again after the restart: lookups %d then %d", before.Hits+before.Misses, after.Hits+after.Misses)
	}
	if n := fivexx.Load(); n != 0 {
		t.Errorf("%d of %d answers were 5xx during the outage", n, served.Load())
	}
	t.Logf("%d answers, %d 5xx; l2 during the outage: %+v", served.Load(), fivexx.Load(), down.Dependencies["l2"])
}

// BenchmarkHitTiers compares cache hits answered from L1 with hits
// answered from L2 (L1 too small to admit an entry), 64 clients over
// loopback TCP cycling over 100 keys, in one run. With many keys,
// concurrent L2 lookups seldom share a round trip by asking for the same
// one; the L2 run fails unless every hit came from L2.
//
//	go test -run '^$' -bench HitTiers -benchtime 3s ./proxy
func BenchmarkHitTiers(b *testing.B) {
	b.ReportAllocs()
	redisAddr := servicetest.RedisAddr(b)
	prefix := servicetest.KeyPrefix(b)
	_, originAddr := startOrigin(b)
	l1 := cacheConfig(b, originAddr, l2Block(redisAddr, prefix))
	l2only := cacheConfig(b, originAddr, l2Block(redisAddr, prefix))
	l2only.Cache.L1.MaxBytes = 1 << 10 // below one entry's cost: every lookup goes to L2
	uris := make([]string, 100)
	for i := range uris {
		uris[i] = fmt.Sprintf("/api/vultr/postgres/products?category=tops&limit=10&maxPrice=%d", 10000+i)
	}
	for _, tier := range []struct {
		name string
		cfg  *configs.Config
		want func(*CacheStats) uint64
	}{
		{"l1", l1, func(c *CacheStats) uint64 { return c.HitsL1 }},
		{"l2", l2only, func(c *CacheStats) uint64 { return c.HitsL2 }},
	} {
		p, addr, _ := startProxy(b, tier.cfg)
		products := p.router.routes[0]
		b.Run(tier.name, func(b *testing.B) {
			for _, uri := range uris { // fill
				fasthttp.ReleaseResponse(get(b, rawClient(addr), "GET", uri))
			}
			time.Sleep(100 * time.Millisecond) // the L2 writes land
			before := tier.want(products.stats.cacheSnapshot())
			benchGetsOver(b, addr, uris, 32, func(resp *fasthttp.Response) bool { // 32 x GOMAXPROCS(2) = 64 clients
				return string(resp.Header.Peek("X-Cache")) == "HIT"
			})
			if got := tier.want(products.stats.cacheSnapshot()) - before; got < uint64(b.N) {
				b.Errorf("%d of %d hits came from %s", got, b.N, tier.name)
			}
		})
	}
}
