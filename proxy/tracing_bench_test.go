package proxy

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// discardSpans is an exporter that counts spans and keeps none.
type discardSpans struct{ n atomic.Int64 }

func (d *discardSpans) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	d.n.Add(int64(len(spans)))
	return nil
}
func (d *discardSpans) Shutdown(context.Context) error { return nil }

// sampledProvider traces 1% of new traces, through the SDK's batching
// processor, as a production setting would.
func sampledProvider(b *testing.B) (*sdktrace.TracerProvider, *discardSpans) {
	exp := &discardSpans{}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))))
	b.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, exp
}

// BenchmarkTracingOverhead compares cache hits from L1 with traces off
// and with 1% of requests sampled, 64 clients over loopback TCP, in one
// run; the sampled run's req/s should be at least 90% of the other's:
//
//	go test -run '^$' -bench TracingOverhead -benchtime 5s -count 3 ./proxy
func BenchmarkTracingOverhead(b *testing.B) {
	b.ReportAllocs()
	_, originAddr := startOrigin(b)
	const uri = "/api/vultr/postgres/products?category=tops&limit=10"
	for _, mode := range []string{"off", "sampled-1pct"} {
		var opts []Option
		var exp *discardSpans
		if mode != "off" {
			var tp *sdktrace.TracerProvider
			tp, exp = sampledProvider(b)
			opts = append(opts, WithTracerProvider(tp))
		}
		_, addr, _ := startProxy(b, cacheConfig(b, originAddr, ""), opts...)
		b.Run(mode, func(b *testing.B) {
			if exp != nil {
				exp.n.Store(0)
			}
			fasthttp.ReleaseResponse(get(b, rawClient(addr), "GET", uri)) // fill
			time.Sleep(20 * time.Millisecond)
			benchGets(b, addr, uri, 32, func(resp *fasthttp.Response) bool {
				return string(resp.Header.Peek("X-Cache")) == "HIT"
			})
			if exp != nil {
				b.ReportMetric(float64(exp.n.Load())/float64(b.N), "spans/req")
			}
		})
	}
}

// BenchmarkL1HitSampled is BenchmarkL1Hit with 1% of requests traced:
// what tracing costs the handler itself, without the network.
func BenchmarkL1HitSampled(b *testing.B) {
	tp, _ := sampledProvider(b)
	_, originAddr := startOrigin(b)
	p, _, _ := startProxy(b, cacheConfig(b, originAddr, ""), WithTracerProvider(tp))
	p.Handler(hitCtx())
	p.cache.WaitForTest()
	benchHits(b, p)
}
