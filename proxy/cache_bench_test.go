package proxy

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// hitCtx builds a request context for a products read, as a browser sends
// it, that the handler can serve again and again.
func hitCtx() *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.SetRequestURI("/api/vultr/postgres/products?category=tops&limit=10&id=7")
	req.Header.SetHost("styleshepherd.test")
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "Mozilla/5.0")
	ctx := new(fasthttp.RequestCtx)
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}, nil)
	return ctx
}

// warmProxy is a proxy in front of the simulated app with one products
// entry in L1.
func warmProxy(b testing.TB) *Proxy {
	_, originAddr := startOrigin(b)
	p, _, _ := startProxy(b, cacheConfig(b, originAddr, ""))
	ctx := hitCtx()
	p.Handler(ctx)
	if got := string(ctx.Response.Header.Peek("X-Cache")); got != "MISS" {
		b.Fatalf("first request: X-Cache %q", got)
	}
	p.cache.WaitForTest()
	ctx.Response.Reset()
	p.Handler(ctx)
	if got := string(ctx.Response.Header.Peek("X-Cache")); got != "HIT" {
		b.Fatalf("second request: X-Cache %q, want HIT", got)
	}
	return p
}

// BenchmarkL1Hit is the whole L1-hit path, route match to answer written
// into the response (not onto a socket):
//
//	go test -run '^$' -bench L1Hit -benchmem ./proxy
func BenchmarkL1Hit(b *testing.B) { benchHits(b, warmProxy(b)) }

// benchHits calls p's handler with hitCtx's request, in parallel.
func benchHits(b *testing.B, p *Proxy) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := hitCtx()
		for pb.Next() {
			ctx.Response.Reset()
			p.Handler(ctx)
		}
	})
}
