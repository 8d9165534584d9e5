package proxy

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

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
// answered from L2 (L1 too small to admit the entry), 64 clients over
// loopback TCP, in one run:
//
//	go test -run '^$' -bench HitTiers -benchtime 3s ./proxy
func BenchmarkHitTiers(b *testing.B) {
	redisAddr := servicetest.RedisAddr(b)
	prefix := servicetest.KeyPrefix(b)
	_, originAddr := startOrigin(b)
	l1 := cacheConfig(b, originAddr, l2Block(redisAddr, prefix))
	l2only := cacheConfig(b, originAddr, l2Block(redisAddr, prefix))
	l2only.Cache.L1.MaxBytes = 1 << 10 // below one entry's cost: every lookup goes to L2
	const uri = "/api/vultr/postgres/products?category=tops&limit=10"
	for _, tier := range []struct {
		name string
		p    func() string
	}{
		{"l1", func() string { _, a, _ := startProxy(b, l1); return a }},
		{"l2", func() string { _, a, _ := startProxy(b, l2only); return a }},
	} {
		addr := tier.p()
		b.Run(tier.name, func(b *testing.B) {
			fasthttp.ReleaseResponse(get(b, rawClient(addr), "GET", uri))    // fill
			time.Sleep(50 * time.Millisecond)                                // the L2 write lands
			benchGets(b, addr, uri, 32, func(resp *fasthttp.Response) bool { // 32 x GOMAXPROCS(2) = 64 clients
				return string(resp.Header.Peek("X-Cache")) == "HIT"
			})
		})
	}
}
