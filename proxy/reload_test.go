package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// reloadRig is a Sheepdog serving the config file it reloads, over a raw
// origin whose /slow answers take 400 ms.
type reloadRig struct {
	path          string
	origin        string
	client, admin *fasthttp.HostClient
	p             *Proxy
}

const reloadToken = "reload-token"

func newReloadRig(t *testing.T, routes string) *reloadRig {
	t.Helper()
	origin, _ := startRawOriginFunc(t, func(req *fasthttp.Request) (string, bool) {
		if string(req.URI().Path()) == "/slow" {
			time.Sleep(400 * time.Millisecond)
		}
		body := string(req.URI().Path())
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body), false
	})
	r := &reloadRig{path: filepath.Join(t.TempDir(), "reload.yaml"), origin: origin}
	r.write(t, routes)
	cfg, err := configs.Load(r.path)
	if err != nil {
		t.Fatal(err)
	}
	p, addr, admin := startProxy(t, cfg, WithReloader(func() (*configs.Config, error) { return configs.Load(r.path) }))
	r.p, r.client, r.admin = p, rawClient(addr), rawClient(admin)
	r.client.MaxConns = 64
	return r
}

// write puts a config with routes in the file; top, if given, replaces
// the settings above the routes.
func (r *reloadRig) write(t *testing.T, routes string, top ...string) {
	t.Helper()
	head := fmt.Sprintf("upstream: {url: \"http://%s\", timeout: 2s}\nadmin: {token: %s}\n", r.origin, reloadToken)
	if len(top) > 0 {
		head = top[0]
	}
	if err := os.WriteFile(r.path, []byte(head+"routes:\n"+routes), 0o600); err != nil {
		t.Fatal(err)
	}
}

// reload posts /reload with the token; it returns the status and body.
func (r *reloadRig) reload(t *testing.T, headers ...string) (int, string) {
	t.Helper()
	if headers == nil {
		headers = []string{"Authorization", "Bearer " + reloadToken}
	}
	resp := get(t, r.admin, "POST", "/reload", headers...)
	defer fasthttp.ReleaseResponse(resp)
	return resp.StatusCode(), string(resp.Body())
}

func (r *reloadRig) health(t *testing.T) Health {
	t.Helper()
	resp := get(t, r.admin, "GET", "/health")
	defer fasthttp.ReleaseResponse(resp)
	var h Health
	if err := json.Unmarshal(resp.Body(), &h); err != nil || h.Config == nil {
		t.Fatalf("/health: %v %s", err, resp.Body())
	}
	return h
}

// xcache gets uri and returns its status and X-Cache.
func (r *reloadRig) xcache(t *testing.T, uri string) (int, string) {
	t.Helper()
	resp := get(t, r.client, "GET", uri)
	defer fasthttp.ReleaseResponse(resp)
	return resp.StatusCode(), string(resp.Header.Peek("X-Cache"))
}

const reloadRoutesV1 = `
  - {name: a, match: {method: GET, path: /a}, cache: {ttl: 60s}}
  - {name: b, match: {method: GET, path: /b}, pass: {}}
  - {name: slow, match: {method: GET, path: /slow}, pass: {}}
`

// TestReload: a reload serves the new routes from the next request on,
// keeps the cache when its block is unchanged and the counters of routes
// that keep their name, and lets a request under way finish on the old
// config.
func TestReload(t *testing.T) {
	r := newReloadRig(t, reloadRoutesV1)
	r.xcache(t, "/a")
	if _, x := r.xcache(t, "/a"); x != "HIT" {
		t.Fatalf("/a before the reload: X-Cache %q", x)
	}
	if _, x := r.xcache(t, "/b"); x != "" {
		t.Fatalf("/b passes before the reload, yet X-Cache %q", x)
	}
	slow := make(chan int, 1)
	go func() { status, _ := r.xcache(t, "/slow"); slow <- status }()
	time.Sleep(100 * time.Millisecond) // /slow is at the origin

	r.write(t, strings.Replace(reloadRoutesV1, "/b}, pass: {}", "/b}, cache: {ttl: 60s}", 1))
	status, body := r.reload(t)
	var ans ReloadAnswer
	if err := json.Unmarshal([]byte(body), &ans); status != 200 || err != nil || !ans.CacheKept || ans.Routes != 3 {
		t.Fatalf("reload: %d %s", status, body)
	}
	if _, x := r.xcache(t, "/a"); x != "HIT" {
		t.Errorf("/a after the reload: X-Cache %q, want HIT (the cache is kept)", x)
	}
	r.xcache(t, "/b")
	if _, x := r.xcache(t, "/b"); x != "HIT" {
		t.Errorf("/b after the reload made it a cache route: X-Cache %q", x)
	}
	if got := <-slow; got != 200 {
		t.Errorf("the request under way at the reload got %d", got)
	}
	resp := get(t, r.admin, "GET", "/stats")
	var s Stats
	err := json.Unmarshal(resp.Body(), &s)
	fasthttp.ReleaseResponse(resp)
	if err != nil || len(s.Routes) != 3 || s.Routes[0].Name != "a" || s.Routes[0].Requests != 3 {
		t.Errorf("/stats after the reload: %v %+v; want route a's 3 requests counted across it", err, s.Routes)
	}
	if h := r.health(t); h.Config.Reloads != 1 || h.Config.Error != "" {
		t.Errorf("/health config: %+v", h.Config)
	}
}

// TestReloadRefused: a config that does not load, or that changes what
// takes a restart, leaves the running config serving; the error names
// the file and line, and /health shows it until a reload takes.
func TestReloadRefused(t *testing.T) {
	r := newReloadRig(t, reloadRoutesV1)
	if status, _ := r.reload(t, "X-None", "x"); status != fasthttp.StatusUnauthorized {
		t.Errorf("reload without the token: %d", status)
	}
	if resp := get(t, r.admin, "GET", "/reload", "Authorization", "Bearer "+reloadToken); resp.StatusCode() != fasthttp.StatusMethodNotAllowed {
		t.Errorf("GET /reload: %d", resp.StatusCode())
	}
	r.write(t, reloadRoutesV1+"  - {name: c, match: {method: GET, path: /c}, cache: {ttl: 60s, colour: red}}\n")
	status, body := r.reload(t)
	wantAt := filepath.Base(r.path) + ":8" // route c's line
	if status != fasthttp.StatusUnprocessableEntity || !strings.Contains(body, wantAt) || !strings.Contains(body, "colour") {
		t.Errorf("bad config: %d %s; want 422 naming %s", status, body, wantAt)
	}
	if h := r.health(t); !strings.Contains(h.Config.Error, wantAt) || h.Config.ErrorAt.IsZero() || h.Config.Reloads != 0 {
		t.Errorf("/health after a failed reload: %+v", h.Config)
	}
	r.xcache(t, "/a")
	if _, x := r.xcache(t, "/a"); x != "HIT" {
		t.Errorf("the running config stopped serving: /a X-Cache %q", x)
	}

	r.write(t, reloadRoutesV1, fmt.Sprintf("listen: 127.0.0.1:1\nupstream: {url: \"http://%s\"}\nadmin: {token: %s}\n", r.origin, reloadToken))
	if status, body := r.reload(t); status != fasthttp.StatusUnprocessableEntity || !strings.Contains(body, "listen changed") {
		t.Errorf("listen changed: %d %s", status, body)
	}

	r.write(t, reloadRoutesV1)
	if status, body := r.reload(t); status != 200 {
		t.Fatalf("good config again: %d %s", status, body)
	}
	if h := r.health(t); h.Config.Error != "" || h.Config.Reloads != 1 {
		t.Errorf("/health after a reload that took: %+v", h.Config)
	}
}

// TestReloadWhileStopping: a reload asked for once shutdown has begun is
// a 503 (try again elsewhere), not a bad config.
func TestReloadWhileStopping(t *testing.T) {
	r := newReloadRig(t, reloadRoutesV1)
	r.health(t) // serving: what stopping refuses from now on is the reload
	r.p.listenersMu.Lock()
	r.p.stopping = true
	r.p.listenersMu.Unlock()
	t.Cleanup(func() {
		r.p.listenersMu.Lock()
		r.p.stopping = false
		r.p.listenersMu.Unlock()
	})
	if status, body := r.reload(t); status != fasthttp.StatusServiceUnavailable || !strings.Contains(body, "shutting_down") {
		t.Errorf("reload while stopping: %d %s; want 503 shutting_down", status, body)
	}
}

// TestReloadUnderLoad: reloads while clients keep asking: every request
// is answered 200, by one config or the next. Run with -race.
func TestReloadUnderLoad(t *testing.T) {
	r := newReloadRig(t, reloadRoutesV1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := map[int]int{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, uri := range []string{"/a", "/b"} {
					if status, _ := r.xcache(t, uri); status != 200 {
						mu.Lock()
						bad[status]++
						mu.Unlock()
					}
				}
			}
		}()
	}
	for i := range 20 {
		routes := reloadRoutesV1
		if i%2 == 0 {
			routes = strings.Replace(routes, "/b}, pass: {}", "/b}, cache: {ttl: 60s}", 1)
		}
		r.write(t, routes)
		if status, body := r.reload(t); status != 200 {
			t.Fatalf("reload %d: %d %s", i, status, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("answers other than 200 across 20 reloads: %v", bad)
	}
}

// TestShutdownWithReloadQueued: a reload under way when shutdown begins
// finishes, one queued behind it is refused, and neither holds shutdown
// up until its grace runs out.
func TestShutdownWithReloadQueued(t *testing.T) {
	origin, _ := startRawOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false)
	path := filepath.Join(t.TempDir(), "reload.yaml")
	src := fmt.Sprintf("upstream: {url: \"http://%s\"}\nadmin: {token: %s}\nroutes:\n%s", origin, reloadToken, reloadRoutesV1)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	var calls atomic.Int32
	p, _, admin, done := serveProxy(t, cfg, WithReloader(func() (*configs.Config, error) {
		if calls.Add(1) == 1 {
			<-gate // the first reload is slow to read its file
		}
		return configs.Load(path)
	}))
	ac := rawClient(admin)
	ac.MaxConns = 4
	post := func() {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.Header.SetMethod("POST")
		req.SetRequestURI("http://" + admin + "/reload")
		req.Header.Set("Authorization", "Bearer "+reloadToken)
		_ = ac.Do(req, resp) // the second may find the listener closed: no matter
	}
	// Two connections open before shutdown, so the second reload can
	// arrive on one after the listener closed.
	var warm sync.WaitGroup
	for range 2 {
		warm.Add(1)
		go func() { defer warm.Done(); fasthttp.ReleaseResponse(get(t, ac, "GET", "/health")) }()
	}
	warm.Wait()
	go post()
	time.Sleep(200 * time.Millisecond)
	shut := make(chan time.Duration, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		shut <- time.Since(start)
	}()
	time.Sleep(200 * time.Millisecond)
	go post() // queued behind the first
	time.Sleep(200 * time.Millisecond)
	close(gate)
	if took := <-shut; took > 2*time.Second {
		t.Errorf("shutdown took %v with a reload queued", took)
	}
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// TestReloadKeepsSummedCounters: a reload that removes a cache route does
// not take its hits out of sheepdog_cache_hits_total, a counter, which
// Prometheus would read as a reset (from a review's test).
func TestReloadKeepsSummedCounters(t *testing.T) {
	r := newReloadRig(t, reloadRoutesV1)
	r.xcache(t, "/a")
	if _, x := r.xcache(t, "/a"); x != "HIT" {
		t.Fatalf("X-Cache %q", x)
	}
	before := scrapeMetrics(t, r.admin.Addr).value("sheepdog_cache_hits_total", "tier", "l1")
	// a becomes a pass route, then is removed: neither takes its hit away.
	for _, routes := range []string{
		strings.Replace(reloadRoutesV1, "/a}, cache: {ttl: 60s}", "/a}, pass: {}", 1),
		"\n  - {name: b, match: {method: GET, path: /b}, pass: {}}\n",
	} {
		r.write(t, routes)
		if status, body := r.reload(t); status != 200 {
			t.Fatalf("reload: %d %s", status, body)
		}
		if after := scrapeMetrics(t, r.admin.Addr).value("sheepdog_cache_hits_total", "tier", "l1"); after < before || before < 1 {
			t.Errorf("sheepdog_cache_hits_total{tier=l1} went from %v to %v across a reload", before, after)
		}
	}
}

// TestReloadTwiceKeepsSharedCacheForOldest: reload 1 keeps the cache
// (ownership moves to generation 2), reload 2 changes the cache block.
// Generation 2 is idle and releases at once, closing the cache that
// generation 1 still uses for a write under way. That write's
// invalidation is then lost: L2 keeps the old answer, and the new
// generation serves it as a HIT after the write was acknowledged.
func TestReloadTwiceKeepsSharedCacheForOldest(t *testing.T) {
	redisAddr := servicetest.RedisAddr(t)
	prefix := servicetest.KeyPrefix(t)
	origin, _ := startRawOriginFunc(t, func(req *fasthttp.Request) (string, bool) {
		if string(req.URI().Path()) == "/write" {
			time.Sleep(400 * time.Millisecond)
		}
		body := string(req.URI().Path())
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body), false
	})
	routes := `
  - {name: item, match: {method: GET, path: /item}, cache: {ttl: 60s, tags: [items]}}
  - {name: write, match: {method: POST, path: /write}, pass: {}, invalidates: [items]}
`
	top := func(l1 string) string {
		return fmt.Sprintf("upstream: {url: \"http://%s\", timeout: 2s}\nadmin: {token: %s}\ncache: {%sl2: {%s}}\n",
			origin, reloadToken, l1, l2Block(redisAddr, prefix))
	}
	r := &reloadRig{path: filepath.Join(t.TempDir(), "reload.yaml"), origin: origin}
	r.write(t, routes, top(""))
	cfg, err := configs.Load(r.path)
	if err != nil {
		t.Fatal(err)
	}
	p, addr, admin := startProxy(t, cfg, WithReloader(func() (*configs.Config, error) { return configs.Load(r.path) }))
	r.p, r.client, r.admin = p, rawClient(addr), rawClient(admin)

	r.xcache(t, "/item")
	if _, x := r.xcache(t, "/item"); x != "HIT" {
		t.Fatalf("/item before: X-Cache %q", x)
	}
	wrote := make(chan int, 1)
	go func() {
		resp := get(t, r.client, "POST", "/write", "body", "{}")
		wrote <- resp.StatusCode()
		fasthttp.ReleaseResponse(resp)
	}()
	time.Sleep(100 * time.Millisecond) // the write is at the app, in generation 1

	if status, body := r.reload(t); status != 200 { // same file: the cache is kept
		t.Fatalf("reload 1: %d %s", status, body)
	}
	r.write(t, routes, top("l1: {max_bytes: 64MiB}, "))
	if status, body := r.reload(t); status != 200 {
		t.Fatalf("reload 2: %d %s", status, body)
	}
	if got := <-wrote; got != 200 {
		t.Fatalf("write: %d", got)
	}
	if n := p.invFailed.Load(); n != 0 {
		t.Errorf("%d invalidations failed: the cache was closed under generation 1's write", n)
	}
	if _, x := r.xcache(t, "/item"); x == "HIT" {
		t.Errorf("/item after an acknowledged write that invalidates it: X-Cache HIT (stale)")
	}
}
