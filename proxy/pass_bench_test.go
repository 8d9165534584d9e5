package proxy

import (
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
			c := &fasthttp.HostClient{Addr: target.addr, MaxConns: 64}
			b.ReportAllocs()
			b.SetParallelism(16) // 16 x GOMAXPROCS clients in flight
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI(uri)
				req.Header.SetHost("styleshepherd.test")
				for pb.Next() {
					if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
						b.Errorf("status %d err %v", resp.StatusCode(), err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
