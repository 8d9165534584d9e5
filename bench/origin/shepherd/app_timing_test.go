package shepherd

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// benchmarkRoute measures the Handler alone (no connection) on one
// request, in parallel: the origin's own cost per answer, which the bench
// suite's ratios must stay well clear of.
func benchmarkRoute(b *testing.B, method, uri, body string, hdr ...string) {
	app := New(Config{})
	req := newRequest(method, uri, body, hdr...)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		for pb.Next() {
			ctx.Init(req, testAddr, nil)
			app.Handler(&ctx)
			if ctx.Response.StatusCode() != 200 {
				b.Errorf("status %d", ctx.Response.StatusCode())
				return
			}
		}
	})
}

func BenchmarkProducts20(b *testing.B) {
	benchmarkRoute(b, "GET", "/api/vultr/postgres/products?limit=20", "")
}

func BenchmarkProducts20Gzip(b *testing.B) {
	benchmarkRoute(b, "GET", "/api/vultr/postgres/products?limit=20", "", "Accept-Encoding", "gzip")
}

func BenchmarkProfile(b *testing.B) {
	benchmarkRoute(b, "GET", "/api/vultr/postgres/users/user_1/profile", "")
}

func BenchmarkSearchMemory(b *testing.B) {
	benchmarkRoute(b, "POST", "/api/raindrop/search-memory", `{"userId":"u","q":"linen","topK":5}`)
}
