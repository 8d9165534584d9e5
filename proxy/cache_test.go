package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
	"github.com/style-shepherd/sheepdog/configs"
)

// cacheConfig is a route table of cache routes in front of upstream; l2 is
// the cache.l2 block ("" for L1 only).
func cacheConfig(t testing.TB, upstream, l2 string) *configs.Config {
	t.Helper()
	src := fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s}
cache: {l2: {%s}}
routes:
  - name: products
    match: {method: GET, path: /api/vultr/postgres/products}
    cache:
      ttl: 60s
      stale_while_revalidate: 30s
      stale_if_error: 10m
      key: {query: [category, brand, minPrice, maxPrice, limit]}
      tags: [products]
  - name: profile
    match: {method: GET, path: "/api/vultr/postgres/users/{userId}/profile"}
    cache: {ttl: 30s, tags: ["profile:{path.userId}"]}
  - name: profile-update
    match: {method: POST, path: "/api/vultr/postgres/users/{userId}/profile"}
    pass: {}
    invalidates: ["profile:{path.userId}"]
  - name: search-memory
    match: {method: POST, path: /api/raindrop/search-memory}
    cache: {ttl: 2m, key: {body: [userId=demo_user, q=, topK=20]}, tags: ["memory:{body.userId=demo_user}"]}
  - name: echo
    match: {path_prefix: /__origin/echo}
    cache: {ttl: 60s, stale_if_error: 1m, key: {query: [status, v, cookies, size]}}
  - name: everything-else
    match: {path_prefix: /}
    pass: {}
`, upstream, l2)
	cfg, err := configs.Parse("cache-test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// get sends one request through c and returns the response, which the
// caller releases.
func get(t testing.TB, c *fasthttp.HostClient, method, uri string, headers ...string) *fasthttp.Response {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetHost("styleshepherd.test")
	typed := false
	for i := 0; i+1 < len(headers); i += 2 {
		switch {
		case headers[i] == "body":
			req.SetBodyString(headers[i+1])
			continue
		case strings.EqualFold(headers[i], "Content-Type"):
			typed = true
			if headers[i+1] == "" {
				continue // sent without one
			}
		}
		req.Header.Add(headers[i], headers[i+1])
	}
	if len(req.Body()) > 0 && !typed {
		req.Header.SetContentType("application/json") // as the app's front end sends its bodies
	}
	resp := fasthttp.AcquireResponse()
	if err := c.Do(req, resp); err != nil {
		t.Fatalf("%s %s: %v", method, uri, err)
	}
	return resp
}

// cacheRig is the simulated app behind a Sheepdog with cacheConfig's
// routes (L1 only), and a client for it.
func cacheRig(t *testing.T) (*shepherd.App, *fasthttp.HostClient) {
	t.Helper()
	return cacheRigWith(t, func(*configs.Config) {})
}

// cacheRigWith is cacheRig with cacheConfig changed by edit first.
func cacheRigWith(t *testing.T, edit func(cfg *configs.Config)) (*shepherd.App, *fasthttp.HostClient) {
	t.Helper()
	app, originAddr := startOrigin(t)
	cfg := cacheConfig(t, originAddr, "")
	edit(cfg)
	_, addr, _ := startProxy(t, cfg)
	return app, rawClient(addr)
}

func count(app *shepherd.App, route string) uint64 { return app.Stats().Routes[route] }

// TestHerd: many clients ask at once for one cold key while the app is
// slow: one upstream request, and every client gets the same answer.
// As in the anchors' herd tool, every client connects first and then all
// send at once, so the time logged is the waiters' wait, not the dialling.
func TestHerd(t *testing.T) {
	app, originAddr := startOrigin(t)
	app.SetLatency("products", 200*time.Millisecond)
	_, addr, _ := startProxy(t, cacheConfig(t, originAddr, ""))

	const n = 1000
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		defer c.Close()
		conns[i] = c
	}
	req := []byte("GET /api/vultr/postgres/products?category=dresses&limit=5 HTTP/1.1\r\n" +
		"Host: styleshepherd.test\r\nX-Request-Id: herd\r\n\r\n")
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		mu      sync.Mutex
		bodies  = map[string]int{}
		states  = map[string]int{}
		took    []time.Duration
		failure []string
	)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			c.SetDeadline(t0.Add(10 * time.Second))
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseResponse(resp)
			_, err := c.Write(req)
			if err == nil {
				err = resp.Read(bufio.NewReader(c))
			}
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				failure = append(failure, err.Error())
			case resp.StatusCode() != 200:
				failure = append(failure, fmt.Sprintf("status %d", resp.StatusCode()))
			}
			took = append(took, d)
			bodies[string(resp.Body())]++
			states[string(resp.Header.Peek("Cache-Status"))]++
		}()
	}
	close(start)
	wg.Wait()
	if len(failure) > 0 {
		t.Fatalf("%d failures, first: %s", len(failure), failure[0])
	}
	if got := count(app, "products"); got != 1 {
		t.Errorf("%d upstream requests for %d clients; want 1", got, n)
	}
	if len(bodies) != 1 {
		t.Errorf("%d different bodies; want 1", len(bodies))
	}
	if states["sheepdog; fwd=miss; stored"] != 1 {
		t.Errorf("Cache-Status counts %v: want exactly one leader", states)
	}
	slices.Sort(took)
	t.Logf("herd of %d: p50 %v, p99 %v, max %v (origin latency 200ms); Cache-Status %v",
		n, took[n/2], took[n*99/100], took[n-1], states)
}

// TestKeyAllowlist: the front end adds ?id=X, which the app ignores; the
// key holds only the five real parameters, so fifty URLs are one entry.
func TestKeyAllowlist(t *testing.T) {
	app, c := cacheRig(t)
	for i := 1; i <= 50; i++ {
		resp := get(t, c, "GET", fmt.Sprintf("/api/vultr/postgres/products?category=tops&brand=Zara&minPrice=10&maxPrice=90&limit=5&id=%d", i))
		if resp.StatusCode() != 200 {
			t.Fatalf("status %d", resp.StatusCode())
		}
		fasthttp.ReleaseResponse(resp)
	}
	if got := count(app, "products"); got != 1 {
		t.Errorf("%d upstream requests for ?id=1..50; want 1", got)
	}
	// A real parameter does make a new entry.
	fasthttp.ReleaseResponse(get(t, c, "GET", "/api/vultr/postgres/products?category=shoes"))
	if got := count(app, "products"); got != 2 {
		t.Errorf("%d upstream requests after a new category; want 2", got)
	}
}

// TestCacheHeaders checks Cache-Status, X-Cache and Age through a miss, a
// hit and a HEAD.
func TestCacheHeaders(t *testing.T) {
	_, originAddr := startOrigin(t)
	_, addr, _ := startProxy(t, cacheConfig(t, originAddr, ""))
	c := rawClient(addr)
	const uri = "/api/vultr/postgres/products?category=bags"
	tests := []struct {
		method, status, xcache string
		age                    bool
	}{
		{"GET", "sheepdog; fwd=miss; stored", "MISS", false},
		{"GET", "sheepdog; hit; ttl=", "HIT", true},
		{"HEAD", "sheepdog; hit; ttl=", "HIT", true},
	}
	var body []byte
	for i, tt := range tests {
		resp := get(t, c, tt.method, uri)
		if got := string(resp.Header.Peek("Cache-Status")); !strings.HasPrefix(got, tt.status) {
			t.Errorf("%d: Cache-Status %q, want %q", i, got, tt.status)
		}
		if got := string(resp.Header.Peek("X-Cache")); got != tt.xcache {
			t.Errorf("%d: X-Cache %q, want %q", i, got, tt.xcache)
		}
		if got := len(resp.Header.Peek("Age")) > 0; got != tt.age {
			t.Errorf("%d: Age present %v, want %v", i, got, tt.age)
		}
		if tt.method == "GET" {
			if body != nil && !bytes.Equal(body, resp.Body()) {
				t.Errorf("%d: hit body differs from the miss's", i)
			}
			body = append([]byte(nil), resp.Body()...)
		} else if resp.Header.ContentLength() != len(body) {
			t.Errorf("HEAD Content-Length %d, want %d", resp.Header.ContentLength(), len(body))
		}
		fasthttp.ReleaseResponse(resp)
	}
}

// TestInvalidateOnWrite: a successful write through a pass route with
// invalidates drops the cached read before the writer gets its answer.
func TestInvalidateOnWrite(t *testing.T) {
	app, c := cacheRig(t)
	const profile = "/api/vultr/postgres/users/user_3/profile"
	fasthttp.ReleaseResponse(get(t, c, "GET", profile))
	fasthttp.ReleaseResponse(get(t, c, "GET", profile))
	if got := count(app, "profile.get"); got != 1 {
		t.Fatalf("%d upstream reads before the write; want 1", got)
	}
	w := get(t, c, "POST", profile, "Content-Type", "application/json", "body", `{"preferences":{"style":"minimal"}}`)
	if w.StatusCode() != 200 {
		t.Fatalf("write status %d: %s", w.StatusCode(), w.Body())
	}
	fasthttp.ReleaseResponse(w)
	r := get(t, c, "GET", profile)
	defer fasthttp.ReleaseResponse(r)
	if got := count(app, "profile.get"); got != 2 {
		t.Errorf("%d upstream reads after the write; want 2 (the write invalidates)", got)
	}
	if !bytes.Contains(r.Body(), []byte("minimal")) {
		t.Errorf("read after write does not show the write: %s", r.Body())
	}
	// Another user's cached profile is untouched.
	fasthttp.ReleaseResponse(get(t, c, "GET", "/api/vultr/postgres/users/user_4/profile"))
	fasthttp.ReleaseResponse(get(t, c, "GET", "/api/vultr/postgres/users/user_4/profile"))
	if got := count(app, "profile.get"); got != 3 {
		t.Errorf("%d upstream reads; want 3", got)
	}
}

// TestPostReadKey: search-memory is a read sent as POST, keyed on its
// canonical body: defaults applied, field order and unknown fields ignored.
func TestPostReadKey(t *testing.T) {
	app, c := cacheRig(t)
	for _, body := range []string{
		`{"userId":"demo_user","q":"","topK":20}`,
		`{}`,
		`{"topK":20,"extra":"ignored"}`,
		`{"q":"","userId":"demo_user"}`,
	} {
		resp := get(t, c, "POST", "/api/raindrop/search-memory", "Content-Type", "application/json", "body", body)
		if resp.StatusCode() != 200 {
			t.Fatalf("%s: status %d %s", body, resp.StatusCode(), resp.Body())
		}
		fasthttp.ReleaseResponse(resp)
	}
	if got := count(app, "memory.search"); got != 1 {
		t.Errorf("%d upstream searches for four equal bodies; want 1", got)
	}
	resp := get(t, c, "POST", "/api/raindrop/search-memory", "Content-Type", "application/json", "body", `{"q":"red"}`)
	fasthttp.ReleaseResponse(resp)
	if got := count(app, "memory.search"); got != 2 {
		t.Errorf("%d upstream searches after a new q; want 2", got)
	}
	resp = get(t, c, "POST", "/api/raindrop/search-memory", "Content-Type", "application/json", "body", `{"q":`)
	defer fasthttp.ReleaseResponse(resp)
	errorBody(t, resp, 400, codeBadRequest)
}

// TestBodyKeyReadsBytesAsNodeDoes: a body with bytes that are not UTF-8
// is keyed on the text the app decodes. "\xe2\x82" (a character cut
// short) is one U+FFFD to Node and "\xff\xff" two: two searches, two
// answers. Read one U+FFFD a byte, as Go's decoders do, both were "\uFFFD\uFFFD"
// and the second was answered the first's entry.
func TestBodyKeyReadsBytesAsNodeDoes(t *testing.T) {
	app, c := cacheRig(t)
	for i, body := range []string{"{\"q\":\"\xe2\x82\"}", "{\"q\":\"\xff\xff\"}", "{\"q\":\"\xe2\x82\"}"} {
		resp := get(t, c, "POST", "/api/raindrop/search-memory", "Content-Type", "application/json", "body", body)
		if resp.StatusCode() != 200 {
			t.Fatalf("%q: status %d %s", body, resp.StatusCode(), resp.Body())
		}
		if x, want := string(resp.Header.Peek("X-Cache")), []string{"MISS", "MISS", "HIT"}[i]; x != want {
			t.Errorf("search %d, %q: X-Cache %s, want %s", i+1, body, x, want)
		}
		fasthttp.ReleaseResponse(resp)
	}
	if got := count(app, "memory.search"); got != 2 {
		t.Errorf("%d upstream searches for two texts; want 2", got)
	}
}

// TestCacheSafety: answers that may not be shared are never stored, and
// credentials bypass the cache; every case asked twice, the second must
// reach the app again.
func TestCacheSafety(t *testing.T) {
	app, originAddr := startOrigin(t)
	_, addr, _ := startProxy(t, cacheConfig(t, originAddr, ""))
	c := rawClient(addr)
	tests := []struct {
		name    string
		uri     string
		headers []string
		status  string // Cache-Status of the second request
	}{
		{"Authorization", "/__origin/echo?v=auth", []string{"Authorization", "Bearer alice"}, "sheepdog; fwd=bypass"},
		{"Cookie", "/__origin/echo?v=cookie", []string{"Cookie", "session=alice"}, "sheepdog; fwd=bypass"},
		{"Set-Cookie", "/__origin/echo?cookies=1", nil, "sheepdog; fwd=miss"},
		{"private", "/__origin/echo?v=private", []string{"X-Echo-Set-Cache-Control", "private"}, "sheepdog; fwd=miss"},
		{"no-store", "/__origin/echo?v=nostore", []string{"X-Echo-Set-Cache-Control", "no-store"}, "sheepdog; fwd=miss"},
		{"5xx", "/__origin/echo?status=500", nil, "sheepdog; fwd=miss"},
		{"Vary: *", "/__origin/echo?v=varystar", []string{"X-Echo-Set-Vary", "*"}, "sheepdog; fwd=miss"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := count(app, "echo")
			for range 2 {
				fasthttp.ReleaseResponse(get(t, c, "GET", tt.uri, tt.headers...))
			}
			resp := get(t, c, "GET", tt.uri, tt.headers...)
			defer fasthttp.ReleaseResponse(resp)
			if got := count(app, "echo") - before; got != 3 {
				t.Errorf("%d of 3 requests reached the app: an answer was stored", got)
			}
			if got := string(resp.Header.Peek("Cache-Status")); got != tt.status {
				t.Errorf("Cache-Status %q, want %q", got, tt.status)
			}
		})
	}

	t.Run("X-Forwarded-Host poisoning", func(t *testing.T) {
		// The attacker's header must not reach the app on a cache route,
		// so the stored answer cannot carry it to the next client.
		evil := get(t, c, "GET", "/__origin/echo?v=poison", "X-Forwarded-Host", "evil.example")
		fasthttp.ReleaseResponse(evil)
		resp := get(t, c, "GET", "/__origin/echo?v=poison")
		defer fasthttp.ReleaseResponse(resp)
		if string(resp.Header.Peek("X-Cache")) != "HIT" {
			t.Errorf("the clean request was not a hit (X-Cache %q): the test proves nothing", resp.Header.Peek("X-Cache"))
		}
		if bytes.Contains(resp.Header.Header(), []byte("evil.example")) {
			t.Errorf("poisoned answer served:\n%s", resp.Header.Header())
		}
	})

	t.Run("Host poisoning", func(t *testing.T) {
		// Host is not in the key: the app is named in it instead of
		// whatever the client sent, so no answer is built for evil.example.
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		req.SetRequestURI("/__origin/echo?v=host")
		req.Header.SetHost("evil.example")
		evil := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(evil)
		if err := c.Do(req, evil); err != nil {
			t.Fatal(err)
		}
		if got := string(evil.Header.Peek("X-Echo-Host")); got != originAddr {
			t.Errorf("the app was asked for Host %q; want its own address %q", got, originAddr)
		}
	})

	t.Run("dot segments poisoning", func(t *testing.T) {
		// Routed as /__origin/echo, but the app gets the path as sent
		// and has no such page: its 404 must not become /__origin/echo's.
		evil := get(t, c, "GET", "/__origin/x/%2E%2E/echo?v=dots")
		if evil.StatusCode() != 404 {
			t.Fatalf("the app answered the dotted path %d: the test proves nothing", evil.StatusCode())
		}
		fasthttp.ReleaseResponse(evil)
		resp := get(t, c, "GET", "/__origin/echo?v=dots")
		defer fasthttp.ReleaseResponse(resp)
		if resp.StatusCode() != 200 || string(resp.Header.Peek("X-Echo-Uri")) != "/__origin/echo?v=dots" {
			t.Errorf("clean request answered %d for %q (%s): another path's answer", resp.StatusCode(),
				resp.Header.Peek("X-Echo-Uri"), resp.Header.Peek("Cache-Status"))
		}
	})

	t.Run("Set-Cookie reaches its own client", func(t *testing.T) {
		resp := get(t, c, "GET", "/__origin/echo?cookies=1&v=own")
		defer fasthttp.ReleaseResponse(resp)
		n := 0
		resp.Header.VisitAllCookie(func(_, _ []byte) { n++ })
		if n != 2 {
			t.Errorf("%d Set-Cookie headers reached the client that asked; want the app's 2", n)
		}
	})
}

// TestUnshareableAnswersNotShared: an answer meant for one client is not
// handed to the clients waiting on its fetch; they ask the app themselves.
// So go a private 5xx, a 429 (a client's own rate limit, not listed to be
// stored) and a no-store 200.
func TestUnshareableAnswersNotShared(t *testing.T) {
	for _, tc := range []struct{ name, query, cacheControl string }{
		{"private 503", "status=503", "private"},
		{"429 not in the route's statuses", "status=429", ""},
		{"no-store 200", "status=200", "no-store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app, originAddr := startOrigin(t)
			_, addr, _ := startProxy(t, cacheConfig(t, originAddr, ""))
			app.SetLatency("echo", 200*time.Millisecond)
			c := rawClient(addr)
			const n = 6
			var wg sync.WaitGroup
			var collapsed atomic.Int64
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(time.Duration(i) * 20 * time.Millisecond) // the first leads
					headers := []string{"X-Test-Who", strconv.Itoa(i)}
					if tc.cacheControl != "" {
						headers = append(headers, "X-Echo-Set-Cache-Control", tc.cacheControl)
					}
					resp := get(t, c, "GET", "/__origin/echo?v=unshared&"+tc.query, headers...)
					defer fasthttp.ReleaseResponse(resp)
					if strings.Contains(string(resp.Header.Peek("Cache-Status")), "collapsed") {
						collapsed.Add(1)
					}
					if got := string(resp.Header.Peek("X-Test-Who")); got != strconv.Itoa(i) {
						t.Errorf("client %d got the answer to client %q", i, got)
					}
				}()
			}
			wg.Wait()
			if got := count(app, "echo"); got != n || collapsed.Load() != 0 {
				t.Errorf("the app saw %d of %d requests, %d answers collapsed; want %d and 0", got, n, collapsed.Load(), n)
			}
		})
	}
}

// startRawOrigin answers every request with answer, written as it is, and
// with closeAfter closes the connection then. It counts the requests.
func startRawOrigin(t *testing.T, answer string, closeAfter bool) (addr string, asked *atomic.Int64) {
	return startRawOriginFunc(t, func(*fasthttp.Request) (string, bool) { return answer, closeAfter })
}

// startRawOriginFunc is startRawOrigin with each request's answer, and
// whether to close after it, given by answer.
func startRawOriginFunc(t *testing.T, answer func(req *fasthttp.Request) (raw string, closeAfter bool)) (addr string, asked *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	asked = new(atomic.Int64)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				var req fasthttp.Request
				for req.Read(br) == nil {
					asked.Add(1)
					raw, closeAfter := answer(&req)
					conn.Write([]byte(raw))
					if closeAfter {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), asked
}

// TestTruncatedUpstreamBody: an answer whose body breaks off before its
// Content-Length is a failed exchange, 502 JSON, on a pass route and on a
// cache route, where it is not stored either. fasthttp's Response.Body
// put the read error's text in its place, and that went out as a 200 and
// was stored.
func TestTruncatedUpstreamBody(t *testing.T) {
	originAddr, asked := startRawOrigin(t, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"+
		"Cache-Control: public, max-age=60\r\nContent-Length: 100\r\n\r\n{\"partial\":", true)
	for _, tc := range []struct {
		name string
		cfg  *configs.Config
	}{
		{"pass", testConfig(t, originAddr, "")},
		{"cache", cacheConfig(t, originAddr, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr, _ := startProxy(t, tc.cfg)
			c := rawClient(addr)
			before := asked.Load()
			for range 2 {
				resp := get(t, c, "GET", "/api/vultr/postgres/products?category=cut")
				if resp.StatusCode() != fasthttp.StatusBadGateway || !bytes.Contains(resp.Body(), []byte(`"code":"upstream_unreachable"`)) {
					t.Errorf("got %d %q (X-Cache %q), want 502 upstream_unreachable", resp.StatusCode(), resp.Body(), resp.Header.Peek("X-Cache"))
				}
				fasthttp.ReleaseResponse(resp)
			}
			if got := asked.Load() - before; got != 2 {
				t.Errorf("the app was asked %d times for 2 requests; want 2 (nothing stored)", got)
			}
		})
	}
}

// cachingProxy starts an app whose answers, {} unless answer writes one,
// may be stored for a minute, and a Sheepdog with cacheConfig in front of
// it; it returns the app, a client of Sheepdog, and Sheepdog's address.
func cachingProxy(t *testing.T, answer func(ctx *fasthttp.RequestCtx)) (*recordingOrigin, *fasthttp.HostClient, string) {
	t.Helper()
	origin, originAddr := startRecordingOrigin(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Cache-Control", "public, max-age=60")
		ctx.SetBodyString(`{}`)
		if answer != nil {
			answer(ctx)
		}
	})
	_, addr, _ := startProxy(t, cacheConfig(t, originAddr, ""))
	return origin, rawClient(addr), addr
}

// TestCacheStatusAppended: the app's own Cache-Status entries are kept,
// and Sheepdog's goes after them, nearest the client (RFC 9211 §2): on the
// miss, on the hit from the stored answer, and on a bypass.
func TestCacheStatusAppended(t *testing.T) {
	_, c, _ := cachingProxy(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Cache-Status", "upstreamcdn; hit; ttl=10")
	})
	for _, tt := range []struct{ uri, want string }{
		{"/api/vultr/postgres/products?category=cs", "upstreamcdn; hit; ttl=10, sheepdog; fwd=miss; stored"},
		{"/api/vultr/postgres/products?category=cs", "upstreamcdn; hit; ttl=10, sheepdog; hit; ttl=59"},
		{"/api/vultr/postgres/products?category=cs&category=x", "upstreamcdn; hit; ttl=10, sheepdog; fwd=bypass"},
	} {
		resp := get(t, c, "GET", tt.uri)
		if got := string(resp.Header.Peek("Cache-Status")); got != tt.want && !(strings.HasSuffix(tt.want, "ttl=59") && strings.HasSuffix(got, "ttl=60")) {
			t.Errorf("%s: Cache-Status %q, want %q", tt.uri, got, tt.want)
		}
		fasthttp.ReleaseResponse(resp)
	}
}

// TestUpstreamAgeCounts: an answer that caches before the app held for
// 50 s of its max-age of 60 s is fresh here for the 10 s left (RFC 9111
// §4.2.3); an Age that is not whole seconds is ignored.
func TestUpstreamAgeCounts(t *testing.T) {
	_, c, _ := cachingProxy(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Age", string(ctx.QueryArgs().Peek("age")))
	})
	for _, tt := range []struct {
		age    string
		maxTTL int
	}{{"50", 10}, {"soon", 60}} {
		uri := "/api/vultr/postgres/products?category=aged-" + tt.age + "&age=" + tt.age
		fasthttp.ReleaseResponse(get(t, c, "GET", uri)) // stored
		resp := get(t, c, "GET", uri)
		cs := string(resp.Header.Peek("Cache-Status"))
		ttl, _ := strconv.Atoi(cs[strings.LastIndex(cs, "=")+1:])
		if !strings.Contains(cs, "hit") || ttl > tt.maxTTL || ttl < tt.maxTTL-2 {
			t.Errorf("Age %s from the app: Cache-Status %q; want a hit with ttl about %d", tt.age, cs, tt.maxTTL)
		}
		fasthttp.ReleaseResponse(resp)
	}
}

// TestAmbiguousQueryBypasses: a keyed query parameter sent twice, or in a
// bracket form, is a list to Express, not the one value the key holds: such
// a request goes upstream uncached, and the plain request stays a miss
// rather than hitting the list's answer.
func TestAmbiguousQueryBypasses(t *testing.T) {
	_, c, _ := cachingProxy(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetBodyString(string(ctx.RequestURI()))
	})
	for _, tt := range []struct{ uri, xcache string }{
		{"/api/vultr/postgres/products?category=tops&category=zzz", "BYPASS"},
		{"/api/vultr/postgres/products?category[]=tops", "BYPASS"},
		{"/api/vultr/postgres/products?category[a]=tops&limit=5", "BYPASS"},
		{"/api/vultr/postgres/products?category=tops", "MISS"},
		{"/api/vultr/postgres/products?category=tops", "HIT"},
		{"/api/vultr/postgres/products?category=tops&other=1&other=2", "HIT"}, // not keyed
	} {
		resp := get(t, c, "GET", tt.uri)
		if got := string(resp.Header.Peek("X-Cache")); got != tt.xcache {
			t.Errorf("%s: X-Cache %q, want %q (body %s)", tt.uri, got, tt.xcache, resp.Body())
		}
		if tt.xcache == "HIT" && string(resp.Body()) != "/api/vultr/postgres/products?category=tops" {
			t.Errorf("%s: hit %s, want the plain request's answer", tt.uri, resp.Body())
		}
		fasthttp.ReleaseResponse(resp)
	}
}

// TestAbsoluteFormTargetKeepsHost: a request whose target names another
// host (GET http://evil.example/...) is fetched with the app's Host on a
// cache route, whose key has no host in it; fasthttp took the host from
// the target.
func TestAbsoluteFormTargetKeepsHost(t *testing.T) {
	origin, _, addr := cachingProxy(t, nil)
	c := dialRaw(t, addr)
	fmt.Fprint(c, "GET http://evil.example/api/vultr/postgres/products?category=abs HTTP/1.1\r\nHost: a.test\r\n\r\n")
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 200 {
		t.Fatalf("status %d %s", resp.StatusCode(), resp.Body())
	}
	if got := origin.header("Host"); len(got) != 1 || got[0] != origin.addr {
		t.Errorf("the app saw Host %q, want [%s]", got, origin.addr)
	}
}

// TestCutWriteAnswerStillInvalidates: a write the app took (its status
// 2xx) whose answer then broke off is answered 502, yet the reads it
// changed are invalidated, since it landed.
func TestCutWriteAnswerStillInvalidates(t *testing.T) {
	var version atomic.Int64
	originAddr, _ := startRawOriginFunc(t, func(req *fasthttp.Request) (string, bool) {
		if string(req.Header.Method()) == "POST" {
			version.Add(1)
			return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"cut", true
		}
		body := fmt.Sprintf(`{"v":%d}`, version.Load())
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body), false
	})
	_, addr, _ := startProxy(t, cacheConfig(t, originAddr, ""))
	c := rawClient(addr)
	const profile = "/api/vultr/postgres/users/u1/profile"
	fasthttp.ReleaseResponse(get(t, c, "GET", profile)) // stored: v 0
	resp := get(t, c, "POST", profile, "body", `{"name":"x"}`)
	if resp.StatusCode() != fasthttp.StatusBadGateway {
		t.Errorf("cut answer to the write: %d %s, want 502", resp.StatusCode(), resp.Body())
	}
	fasthttp.ReleaseResponse(resp)
	resp = get(t, c, "GET", profile)
	defer fasthttp.ReleaseResponse(resp)
	if string(resp.Body()) != `{"v":1}` {
		t.Errorf("read after the write: %s (%s), want the app's new {\"v\":1}", resp.Body(), resp.Header.Peek("Cache-Status"))
	}
}

// TestOddUpstreamStatus: a status past 599 from the app is passed on and
// not stored; it used to index past the storable-status table and crash
// the process from inside the flight.
func TestOddUpstreamStatus(t *testing.T) {
	originAddr, asked := startRawOrigin(t, "HTTP/1.1 600 Odd\r\nContent-Type: application/json\r\n"+
		"Cache-Control: public, max-age=60\r\nContent-Length: 2\r\n\r\n{}", false)
	_, addr, _ := startProxy(t, cacheConfig(t, originAddr, ""))
	c := rawClient(addr)
	for range 2 {
		resp := get(t, c, "GET", "/api/vultr/postgres/products?category=odd")
		if resp.StatusCode() != 600 {
			t.Errorf("status %d, want the app's 600", resp.StatusCode())
		}
		fasthttp.ReleaseResponse(resp)
	}
	if got := asked.Load(); got != 2 {
		t.Errorf("the app was asked %d times for 2 requests; want 2 (a 600 is not stored)", got)
	}
}

// TestEarlyRefresh: a hot key is refreshed in the background before it
// expires (XFetch), while every client is still answered from the copy.
// The echo route's answers carry no Vary, so the refresh's second look
// into the cache finds the copy itself, still fresh: it must fetch anyway.
func TestEarlyRefresh(t *testing.T) {
	app, c := cacheRigWith(t, func(cfg *configs.Config) { cfg.Routes[4].Cache.TTL = time.Second })
	app.SetLatency("echo", 100*time.Millisecond)
	const uri = "/__origin/echo?v=early"
	filled := time.Now() // the copy is stored a little after, fresh for 1s
	first := get(t, c, "GET", uri)
	if len(first.Header.Peek("Vary")) > 0 {
		t.Fatalf("the answer has Vary %q: the test proves nothing", first.Header.Peek("Vary"))
	}
	fasthttp.ReleaseResponse(first)
	hits := 0
	for time.Since(filled) < 930*time.Millisecond {
		resp := get(t, c, "GET", uri)
		if x := string(resp.Header.Peek("X-Cache")); x != "HIT" {
			t.Fatalf("request %d: X-Cache %q, want HIT", hits+1, x)
		}
		fasthttp.ReleaseResponse(resp)
		hits++
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(30 * time.Millisecond) // a refresh begun reaches the app; the copy is still fresh
	if got := count(app, "echo"); got < 2 {
		t.Errorf("the app saw %d request(s) after %d hits on a copy about to expire; want a refresh before expiry", got, hits)
	}
}

// TestStaleIfError: with the app down, a stale copy inside its window is
// answered and marked; past the window, a JSON 502.
func TestStaleIfError(t *testing.T) {
	app, c := cacheRigWith(t, func(cfg *configs.Config) {
		cfg.Routes[4].Cache.TTL = 100 * time.Millisecond
		cfg.Routes[4].Cache.StaleIfError = 500 * time.Millisecond
	})
	fasthttp.ReleaseResponse(get(t, c, "GET", "/__origin/echo?v=sie"))
	app.Close() // the app is down: connections are refused

	time.Sleep(150 * time.Millisecond) // stale now, inside stale_if_error
	resp := get(t, c, "GET", "/__origin/echo?v=sie")
	if resp.StatusCode() != 200 || !strings.Contains(string(resp.Header.Peek("Cache-Status")), "detail=stale-if-error") ||
		string(resp.Header.Peek("X-Cache")) != "STALE" {
		t.Errorf("inside the window: %d %q %q", resp.StatusCode(), resp.Header.Peek("Cache-Status"), resp.Header.Peek("X-Cache"))
	}
	fasthttp.ReleaseResponse(resp)

	time.Sleep(500 * time.Millisecond) // past the window
	resp = get(t, c, "GET", "/__origin/echo?v=sie")
	defer fasthttp.ReleaseResponse(resp)
	errorBody(t, resp, 502, codeUpstreamUnreachable)
}

// TestStaleIfErrorOn5xxAndTimeout: inside stale_if_error a stale copy
// also answers when the app answers 5xx (its status named) or does not
// answer within the upstream timeout; a key with no copy is a 504 whose
// Cache-Status says it was a miss.
func TestStaleIfErrorOn5xxAndTimeout(t *testing.T) {
	var mode atomic.Int32 // 0 answers, 1 fails with 503, 2 outlasts the 2 s timeout
	addr, _ := startRawOriginFunc(t, func(*fasthttp.Request) (string, bool) {
		switch mode.Load() {
		case 1:
			return "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}", false
		case 2:
			time.Sleep(2500 * time.Millisecond)
		}
		return "HTTP/1.1 200 OK\r\nCache-Control: max-age=1\r\nContent-Length: 4\r\n\r\nfine", false
	})
	_, paddr, _ := startProxy(t, cacheConfig(t, addr, ""))
	c := rawClient(paddr)
	fasthttp.ReleaseResponse(get(t, c, "GET", "/__origin/echo?v=sie5"))
	time.Sleep(1100 * time.Millisecond) // stale now
	for _, tc := range []struct {
		mode int32
		cs   string
	}{{1, "sheepdog; fwd=stale; fwd-status=503; detail=stale-if-error"}, {2, "sheepdog; fwd=stale; detail=stale-if-error"}} {
		mode.Store(tc.mode)
		resp := get(t, c, "GET", "/__origin/echo?v=sie5")
		if resp.StatusCode() != 200 || string(resp.Body()) != "fine" || string(resp.Header.Peek("Cache-Status")) != tc.cs {
			t.Errorf("mode %d: %d %q %q, want the stale copy with %q", tc.mode, resp.StatusCode(), resp.Body(), resp.Header.Peek("Cache-Status"), tc.cs)
		}
		fasthttp.ReleaseResponse(resp)
	}
	resp := get(t, c, "GET", "/__origin/echo?v=nocopy")
	defer fasthttp.ReleaseResponse(resp)
	errorBody(t, resp, 504, codeUpstreamTimeout)
	if cs := string(resp.Header.Peek("Cache-Status")); cs != "sheepdog; fwd=miss" {
		t.Errorf("no copy: Cache-Status %q", cs)
	}
}

// TestStaleWhileRevalidate: fifty clients on an expired key inside the
// window are all answered at once from the stale copy, and the app sees
// exactly one refresh.
func TestStaleWhileRevalidate(t *testing.T) {
	app, c := cacheRigWith(t, func(cfg *configs.Config) { cfg.Routes[0].Cache.TTL = time.Second })
	c.MaxConns = 100
	const uri = "/api/vultr/postgres/products?category=coats"
	fasthttp.ReleaseResponse(get(t, c, "GET", uri))
	time.Sleep(1100 * time.Millisecond) // expired, inside stale_while_revalidate (30s)
	app.SetLatency("products", 300*time.Millisecond)

	var wg sync.WaitGroup
	var mu sync.Mutex
	var slow, notStale int
	start := make(chan struct{})
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			resp := get(t, c, "GET", uri)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if d > 150*time.Millisecond {
				slow++
			}
			if string(resp.Header.Peek("X-Cache")) != "STALE" {
				notStale++
			}
			fasthttp.ReleaseResponse(resp)
		}()
	}
	close(start)
	wg.Wait()
	if slow > 0 || notStale > 0 {
		t.Errorf("%d waited on the refresh, %d not answered stale; want 0 and 0", slow, notStale)
	}
	time.Sleep(400 * time.Millisecond) // the refresh (300ms) lands; its copy is fresh for 1s
	if got := count(app, "products"); got != 2 {
		t.Errorf("the app saw %d requests; want 2 (the fill and exactly one refresh)", got)
	}
	resp := get(t, c, "GET", uri)
	defer fasthttp.ReleaseResponse(resp)
	if string(resp.Header.Peek("X-Cache")) != "HIT" {
		t.Errorf("after the refresh: X-Cache %q, want HIT", resp.Header.Peek("X-Cache"))
	}
}

// TestPurge drops entries by tag, by URL and by prefix through the admin
// endpoint, and refuses a request without the token.
func TestPurge(t *testing.T) {
	app, originAddr := startOrigin(t)
	cfg := cacheConfig(t, originAddr, "")
	cfg.Admin.Token = "s3cret"
	_, addr, admin := startProxy(t, cfg)
	c, ac := rawClient(addr), rawClient(admin)
	const products = "/api/vultr/postgres/products?category=hats"
	warm := func() {
		fasthttp.ReleaseResponse(get(t, c, "GET", products))
	}
	purge := func(body string, token string) int {
		resp := get(t, ac, "POST", "/purge", "Authorization", "Bearer "+token, "body", body)
		defer fasthttp.ReleaseResponse(resp)
		return resp.StatusCode()
	}
	warm()
	if s := purge(`{"tag":"products"}`, "wrong"); s != 401 {
		t.Errorf("purge with a wrong token: %d, want 401", s)
	}
	for _, body := range []string{`{"tag":"products"}`, `{"url":"` + products + `&id=9"}`, `{"prefix":"/api/vultr/postgres/"}`} {
		before := count(app, "products")
		warm() // still cached
		if count(app, "products") != before {
			t.Fatalf("not cached before purge %s", body)
		}
		if s := purge(body, "s3cret"); s != 200 {
			t.Fatalf("purge %s: %d", body, s)
		}
		warm()
		if got := count(app, "products") - before; got != 1 {
			t.Errorf("purge %s: %d upstream requests after it, want 1", body, got)
		}
	}
	if s := purge(`{"tag":"a","prefix":"/b"}`, "s3cret"); s != 400 {
		t.Errorf("purge naming two things: %d, want 400", s)
	}
}

// TestCacheRouteDropsUnkeyedBody: a body on a GET cache route is not part
// of the key, so it is not forwarded either: two GETs with different
// bodies get the same answer, and the app never sees a body.
func TestCacheRouteDropsUnkeyedBody(t *testing.T) {
	app, c := cacheRig(t)
	// The second body is past fasthttp's 8 KB read-ahead: its unread bytes
	// must not be taken for the next request on the connection.
	for _, body := range []string{"first", strings.Repeat("x", 100<<10), "third"} {
		resp := get(t, c, "GET", "/__origin/echo?v=body", "body", body)
		if got := string(resp.Header.Peek("X-Echo-Body-Len")); got != "0" {
			t.Errorf("a %d-byte body: the app saw %q body bytes, want 0", len(body), got)
		}
		fasthttp.ReleaseResponse(resp)
	}
	if got := count(app, "echo"); got != 1 {
		t.Errorf("%d upstream requests, want 1", got)
	}
}

// TestCacheRouteMethods: a cache route that names no method serves GET
// and HEAD from the cache and passes every other method to the app,
// body and all: a write is never answered from the cache.
func TestCacheRouteMethods(t *testing.T) {
	app, c := cacheRig(t)
	for i := range 2 {
		resp := get(t, c, "DELETE", "/__origin/echo?v=del", "body", `{"n":1}`)
		if got := string(resp.Header.Peek("Cache-Status")); got != "sheepdog; fwd=bypass" {
			t.Errorf("DELETE %d: Cache-Status %q, want a bypass", i+1, got)
		}
		if got := string(resp.Header.Peek("X-Echo-Body-Len")); got != "7" {
			t.Errorf("DELETE %d: the app got a body of %q bytes, want 7", i+1, got)
		}
		fasthttp.ReleaseResponse(resp)
	}
	if got := count(app, "echo"); got != 2 {
		t.Errorf("the app saw %d of 2 DELETEs", got)
	}
}

// TestCenturiesOfTTLStillCache: a ttl and stale windows that together pass
// int64 nanoseconds' 292 years are held at the far future, not wrapped
// into the past: the answer is stored and the next request is a HIT.
func TestCenturiesOfTTLStillCache(t *testing.T) {
	origin, asked := startRawOriginFunc(t, func(*fasthttp.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok", false
	})
	cfg, err := configs.Parse("centuries.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s"}
routes:
  - {name: long, match: {method: GET, path: /long}, cache: {ttl: 2500000h, stale_while_revalidate: 2500000h}}
`, origin)))
	if err != nil {
		t.Fatal(err)
	}
	_, addr, _ := startProxy(t, cfg)
	c := rawClient(addr)
	for _, want := range []string{"MISS", "HIT"} {
		resp := get(t, c, "GET", "/long")
		if x := string(resp.Header.Peek("X-Cache")); x != want || resp.StatusCode() != 200 {
			t.Errorf("X-Cache %q (status %d), want %s", x, resp.StatusCode(), want)
		}
		fasthttp.ReleaseResponse(resp)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the app was asked %d times, want 1", n)
	}
}

// TestReadAfterWriteJoinsNoEarlierFetch: a read that arrives after a write
// was acknowledged (its tags invalidated) must not join the flight of a
// fetch that began before the write: it used to, and was answered that
// fetch's pre-write body ("fwd=miss; collapsed").
func TestReadAfterWriteJoinsNoEarlierFetch(t *testing.T) {
	var value atomic.Value
	value.Store("v1")
	release := make(chan struct{})
	var blockOnce sync.Once
	var gets atomic.Int64
	_, originAddr := startRecordingOrigin(t, func(ctx *fasthttp.RequestCtx) {
		if ctx.IsPost() {
			value.Store("v2")
			ctx.SetBodyString(`{"success":true}`)
			return
		}
		body := `{"fit":"` + value.Load().(string) + `"}` // read as the request arrives
		if gets.Add(1) == 1 {
			blockOnce.Do(func() { <-release }) // the first fetch is slow
		}
		ctx.SetBodyString(body)
	})
	p, addr, _ := startProxy(t, cacheConfig(t, originAddr, ""))
	c := rawClient(addr)
	const profile = "/api/vultr/postgres/users/u1/profile"

	first := make(chan string, 1)
	go func() {
		r := get(t, c, "GET", profile)
		first <- string(r.Body())
		fasthttp.ReleaseResponse(r)
	}()
	for gets.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// The write: the app takes it, Sheepdog invalidates, the writer gets 200.
	w := get(t, c, "POST", profile, "body", `{"preferences":{"fit":"slim"}}`)
	if w.StatusCode() != 200 {
		t.Fatalf("write %d", w.StatusCode())
	}
	fasthttp.ReleaseResponse(w)

	// Now a read, strictly after the acknowledged write.
	second := make(chan *fasthttp.Response, 1)
	go func() { second <- get(t, c, "GET", profile) }()
	// Wait until it has missed and gone to the flight (the miss is counted
	// just before flight.Do), then give it ample time to join.
	var rt *route
	for _, r := range p.router.routes {
		if r.name == "profile" {
			rt = r
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for rt.stats.misses.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("second reader never missed")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	close(release)
	t.Logf("first (began before the write): %s", <-first)
	r := <-second
	defer fasthttp.ReleaseResponse(r)
	t.Logf("the app was asked for the profile %d time(s)", gets.Load())
	if string(r.Body()) != `{"fit":"v2"}` {
		t.Fatalf("read begun after the acknowledged write got %s (X-Cache %s, Cache-Status %q); the app holds v2",
			r.Body(), r.Header.Peek("X-Cache"), r.Header.Peek("Cache-Status"))
	}
}
