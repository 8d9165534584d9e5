package proxy

import (
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkPassThrough measures requests per second for the same profile
// read straight from the simulated app and through Sheepdog's pass handler,
// in one run, over loopback TCP:
//
//	go test -run '^$' -bench PassThrough -benchtime 3s ./proxy
//
// req/s is reported per sub-benchmark; compare the two rows of one run.
func BenchmarkPassThrough(b *testing.B) {
	_, originAddr := startOrigin(b)
	_, proxyAddr, _ := startProxy(b, testConfig(b, originAddr, ""))
	// The profile route is a pass route in the test table.
	const uri = "/api/vultr/postgres/users/user_1/profile"
	for _, target := range []struct{ name, addr string }{{"direct", originAddr}, {"sheepdog", proxyAddr}} {
		b.Run(target.name, func(b *testing.B) {
			benchGets(b, target.addr, uri, 16, func(resp *fasthttp.Response) bool { return resp.StatusCode() == 200 })
		})
	}
}

// benchGets sends GET uri to addr from parallelism x GOMAXPROCS clients
// for b.N requests in all, fails on an answer ok rejects, and reports
// requests per second.
func benchGets(b *testing.B, addr, uri string, parallelism int, ok func(*fasthttp.Response) bool) {
	benchGetsOver(b, addr, []string{uri}, parallelism, ok)
}

// benchGetsOver is benchGets cycling over uris, each client from its own
// place in the list.
func benchGetsOver(b *testing.B, addr string, uris []string, parallelism int, ok func(*fasthttp.Response) bool) {
	c := &fasthttp.HostClient{Addr: addr, MaxConns: 64}
	var clients atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.Header.SetHost("styleshepherd.test")
		for i := int(clients.Add(1)) * 7; pb.Next(); i++ {
			req.SetRequestURI(uris[i%len(uris)])
			if err := c.Do(req, resp); err != nil || !ok(resp) {
				b.Errorf("err %v status %d X-Cache %q", err, resp.StatusCode(), resp.Header.Peek("X-Cache"))
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
