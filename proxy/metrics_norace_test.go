//go:build !race

package proxy

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// TestMetricsL1RejectsNoRace: L1's refusals of newcomers colder than
// what it holds are counted. Without -race only: ristretto counts hits
// in sync.Pool'd buffers, which the race detector drops on purpose, so
// under it no entry ever gets hot.
func TestMetricsL1RejectsNoRace(t *testing.T) {
	_, origin := startOrigin(t)
	cfg := metricsConfig(t, origin, l2Block(servicetest.RedisAddr(t), servicetest.KeyPrefix(t)), servicetest.PostgresDSN(t), "256KiB", "orders")
	p, addr, admin := startProxy(t, cfg)
	c := rawClient(addr)
	before := scrapeMetrics(t, admin)
	fillL1(p, func(q string) { fasthttp.ReleaseResponse(get(t, c, "GET", "/api/vultr/postgres/products?category="+q)) })
	moved(t, before, scrapeMetrics(t, admin), 1, "sheepdog_l1_rejected_total", "reason", "admission")
}
