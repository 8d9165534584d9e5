package proxy

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// scrape is one parse of /metrics with Prometheus' own text parser.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, admin string) scrape {
	t.Helper()
	resp := get(t, rawClient(admin), "GET", "/metrics")
	defer fasthttp.ReleaseResponse(resp)
	if resp.StatusCode() != 200 || !strings.HasPrefix(string(resp.Header.ContentType()), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %d %s", resp.StatusCode(), resp.Header.ContentType())
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(resp.Body()))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, resp.Body())
	}
	return families
}

// value is the value of the metric with exactly these labels (name=value
// pairs); for a histogram, its count. -1 when there is none.
func (s scrape) value(name string, labels ...string) float64 {
	mf := s[name]
	if mf == nil {
		return -1
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// moved fails the test unless the metric went from before to after by
// at least min.
func moved(t *testing.T, before, after scrape, min float64, name string, labels ...string) {
	t.Helper()
	b, a := before.value(name, labels...), after.value(name, labels...)
	if a < 0 || a-max(b, 0) < min {
		t.Errorf("%s%v: %v then %v; want a rise of at least %v", name, labels, b, a, min)
	}
}

// TestMetricsFamilies: every family is exposed, and the build's version
// is there.
func TestMetricsFamilies(t *testing.T) {
	_, origin := startOrigin(t)
	redisAddr := servicetest.RedisAddr(t)
	_, _, admin := startProxy(t, metricsConfig(t, origin, l2Block(redisAddr, servicetest.KeyPrefix(t)), servicetest.PostgresDSN(t), "64MiB", "orders"), WithVersion("1.2.3"))
	s := scrapeMetrics(t, admin)
	for _, name := range []string{
		"sheepdog_requests_total", "sheepdog_cache_requests_total", "sheepdog_coalesced_waiters_total",
		"sheepdog_upstream_request_duration_seconds",
		"sheepdog_l1_hits_total", "sheepdog_l1_misses_total", "sheepdog_l1_evictions_total", "sheepdog_l1_rejected_total",
		"sheepdog_l1_bytes", "sheepdog_l1_max_bytes",
		"sheepdog_l2_hits_total", "sheepdog_l2_misses_total", "sheepdog_l2_errors_total", "sheepdog_l2_writes_total",
		"sheepdog_batch_size_items", "sheepdog_batch_wait_seconds", "sheepdog_batch_queue_depth", "sheepdog_batch_refused_total",
		"sheepdog_sink_errors_total", "sheepdog_valkey_pool_connections", "sheepdog_valkey_pool_timeouts_total",
		"sheepdog_postgres_pool_connections", "sheepdog_invalidations_sent_total", "sheepdog_invalidations_received_total",
		"sheepdog_invalidation_failures_total", "sheepdog_invalidation_lag_seconds", "sheepdog_build_info",
		"sheepdog_invalidation_tags_retried_total", "sheepdog_invalidation_tags_lost_total",
		"sheepdog_cache_hits_total", "sheepdog_coalesced_total", // DESIGN.md's names
	} {
		if s[name] == nil {
			// Vectors appear once a child exists: touch them first.
			if name == "sheepdog_sink_errors_total" || strings.HasPrefix(name, "sheepdog_batch_") || name == "sheepdog_upstream_request_duration_seconds" {
				continue
			}
			t.Errorf("%s is missing", name)
		}
	}
	if s.value("sheepdog_build_info", "version", "1.2.3") != 1 {
		t.Errorf("build_info: %v", s["sheepdog_build_info"])
	}
}

// metricsConfig has a cache route, a pass route, and http and postgres
// batch routes, one of them to an endpoint the app does not have (its
// writes fail: sink errors).
func metricsConfig(t *testing.T, origin, l2, dsn, l1, table string) *configs.Config {
	t.Helper()
	cfg, err := configs.Parse("metrics.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s}
cache: {l1: {max_bytes: %s}, l2: {%s}}
postgres: {dsn: "%s"}
routes:
  - name: products
    match: {method: GET, path: /api/vultr/postgres/products}
    cache: {ttl: 60s, key: {query: [category]}, tags: [products]}
  - name: profile-update
    match: {method: POST, path: "/api/vultr/postgres/users/{userId}/profile"}
    pass: {}
    invalidates: [products]
  - name: store-memory
    match: {method: POST, path: /api/raindrop/store-memory}
    batch: {sink: http, url: /api/raindrop/batch-store-memory, wrap: memories, split: results}
  - name: broken-store
    match: {method: POST, path: /api/raindrop/broken-store}
    batch: {sink: http, url: /api/raindrop/no-such-endpoint, wrap: memories, split: results}
  - name: slow-store
    match: {method: POST, path: /api/raindrop/slow-store}
    batch: {sink: http, url: /api/raindrop/batch-store-memory, wrap: memories, split: results, max_items: 1, queue: 2}
  - name: create-order
    match: {method: POST, path: /api/vultr/postgres/orders}
    batch: {sink: postgres, table: %s, columns: {order_id: "{id:order_}", user_id: "{body.user_id}"}}
  - name: everything-else
    match: {path_prefix: /}
    pass: {}
`, origin, l1, l2, dsn, table)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestMetricsReads: a miss then a hit move the request, cache-status,
// upstream-latency, L1 and L2 families; a herd moves the coalesced
// waiters; a small L1 under many entries evicts (its refusals are
// TestMetricsL1RejectsNoRace's).
func TestMetricsReads(t *testing.T) {
	app, origin := startOrigin(t)
	redisAddr := servicetest.RedisAddr(t)
	cfg := metricsConfig(t, origin, l2Block(redisAddr, servicetest.KeyPrefix(t)), servicetest.PostgresDSN(t), "256KiB", "orders")
	p, addr, admin := startProxy(t, cfg)
	c := rawClient(addr)
	c.MaxConns = 100
	before := scrapeMetrics(t, admin)
	read := func(q string) { fasthttp.ReleaseResponse(get(t, c, "GET", "/api/vultr/postgres/products?category="+q)) }
	read("tops")
	p.cache.WaitForTest()
	read("tops")
	app.SetLatency("products", 100*time.Millisecond)
	burst(20, func(int) { read("herd") })
	app.SetLatency("products", 0)
	fillL1(p, read)
	after := scrapeMetrics(t, admin)

	moved(t, before, after, 2+20+70+700+200, "sheepdog_requests_total", "route", "products", "code", "2xx")
	moved(t, before, after, 1, "sheepdog_cache_requests_total", "route", "products", "status", "hit_l1")
	moved(t, before, after, 1+1+70+200, "sheepdog_cache_requests_total", "route", "products", "status", "miss")
	moved(t, before, after, 19, "sheepdog_cache_requests_total", "route", "products", "status", "collapsed")
	moved(t, before, after, 19, "sheepdog_coalesced_waiters_total", "route", "products")
	moved(t, before, after, 19, "sheepdog_coalesced_total")
	moved(t, before, after, 1, "sheepdog_cache_hits_total", "tier", "l1")
	moved(t, before, after, 1+1+70+200, "sheepdog_upstream_requests_total", "route", "products")
	// Each answer has one status: they add up to the answers.
	answers := after.value("sheepdog_requests_total", "route", "products", "code", "2xx") -
		max(before.value("sheepdog_requests_total", "route", "products", "code", "2xx"), 0)
	byStatus := 0.0
	for _, st := range []string{"hit_l1", "hit_l2", "miss", "stale", "collapsed", "bypass"} {
		byStatus += max(after.value("sheepdog_cache_requests_total", "route", "products", "status", st), 0) -
			max(before.value("sheepdog_cache_requests_total", "route", "products", "status", st), 0)
	}
	if byStatus != answers {
		t.Errorf("cache statuses add up to %v for %v answers", byStatus, answers)
	}
	moved(t, before, after, 1+1+70+200, "sheepdog_upstream_request_duration_seconds", "route", "products")
	moved(t, before, after, 1, "sheepdog_l1_hits_total")
	moved(t, before, after, 1, "sheepdog_l1_misses_total")
	moved(t, before, after, 1, "sheepdog_l1_bytes")
	moved(t, before, after, 1, "sheepdog_l2_misses_total")
	_, addrB, adminB := startProxy(t, cfg) // a replica on the same L2
	beforeB := scrapeMetrics(t, adminB)
	fasthttp.ReleaseResponse(get(t, rawClient(addrB), "GET", "/api/vultr/postgres/products?category=tops"))
	moved(t, beforeB, scrapeMetrics(t, adminB), 1, "sheepdog_l2_hits_total")
	moved(t, before, after, 1, "sheepdog_l2_writes_total", "outcome", "written")
	if after.value("sheepdog_valkey_pool_connections", "client", "l2", "state", "total") < 1 {
		t.Errorf("the L2 pool shows no connection")
	}
	moved(t, before, after, 1, "sheepdog_l1_evictions_total")
	if after.value("sheepdog_l1_bytes") > after.value("sheepdog_l1_max_bytes") {
		t.Errorf("L1 holds %v bytes of %v", after.value("sheepdog_l1_bytes"), after.value("sheepdog_l1_max_bytes"))
	}
	if after.value("sheepdog_requests_total", "route", "", "code", "4xx") != 0 {
		t.Errorf("unrouted requests counted")
	}
}

// TestMetricsL2Errors: with Valkey gone, L2 lookups fail and are counted.
func TestMetricsL2Errors(t *testing.T) {
	_, origin := startOrigin(t)
	valkey := servicetest.StartRedisServer(t)
	_, addr, admin := startProxy(t, metricsConfig(t, origin, l2Block(valkey.Addr, "sheepdog:"), servicetest.PostgresDSN(t), "64MiB", "orders"))
	c := rawClient(addr)
	fasthttp.ReleaseResponse(get(t, c, "GET", "/api/vultr/postgres/products?category=a"))
	before := scrapeMetrics(t, admin)
	valkey.Stop()
	for i := range 5 {
		fasthttp.ReleaseResponse(get(t, c, "GET", fmt.Sprintf("/api/vultr/postgres/products?category=b%d", i)))
	}
	after := scrapeMetrics(t, admin)
	if after.value("sheepdog_l2_errors_total", "kind", "failed")+after.value("sheepdog_l2_errors_total", "kind", "skipped") <=
		before.value("sheepdog_l2_errors_total", "kind", "failed")+before.value("sheepdog_l2_errors_total", "kind", "skipped") {
		t.Errorf("l2 errors did not move with Valkey stopped")
	}
}

// TestMetricsWrites: batches move the size and wait histograms; a sink
// that fails moves sink errors; a postgres sink shows its pool; writes
// waiting behind a slow endpoint raise the queue depth, and those that
// find the queue full the refusals.
func TestMetricsWrites(t *testing.T) {
	app, origin := startOrigin(t)
	_, table := testOrdersTable(t)
	redisAddr := servicetest.RedisAddr(t)
	cfg := metricsConfig(t, origin, l2Block(redisAddr, servicetest.KeyPrefix(t)), servicetest.PostgresDSN(t), "64MiB", table)
	_, addr, admin := startProxy(t, cfg)
	c := rawClient(addr)
	c.MaxConns = 100
	before := scrapeMetrics(t, admin)
	post := func(path, body string) int {
		resp := get(t, c, "POST", path, "Content-Type", "application/json", "body", body)
		defer fasthttp.ReleaseResponse(resp)
		return resp.StatusCode()
	}
	burst(30, func(i int) { post("/api/raindrop/store-memory", fmt.Sprintf(`{"text":"m%d"}`, i)) })
	if s := post("/api/raindrop/broken-store", `{"text":"x"}`); s < 400 {
		t.Errorf("a store to a missing endpoint: %d", s)
	}
	if s := post("/api/vultr/postgres/orders", `{"user_id":"u1"}`); s != 200 {
		t.Errorf("order: %d", s)
	}
	// A slow endpoint, one item a flush (four flushes at once) and room
	// for two in the queue: of twelve writes at once, four are flushed,
	// two wait and six are refused.
	app.SetLatency("memory.batch", 300*time.Millisecond)
	done := make(chan struct{})
	go func() {
		defer close(done)
		burst(12, func(i int) { post("/api/raindrop/slow-store", fmt.Sprintf(`{"text":"s%d"}`, i)) })
	}()
	var depth float64
	for deadline := time.Now().Add(2 * time.Second); depth < 1 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		depth = scrapeMetrics(t, admin).value("sheepdog_batch_queue_depth", "route", "slow-store")
	}
	<-done
	if depth < 1 {
		t.Errorf("queue depth never rose above 0 with writes waiting")
	}
	after := scrapeMetrics(t, admin)
	moved(t, before, after, 1, "sheepdog_batch_refused_total", "route", "slow-store")
	moved(t, before, after, 1, "sheepdog_batch_size_items", "route", "store-memory")
	moved(t, before, after, 1, "sheepdog_batch_items", "sink", "http")
	moved(t, before, after, 1, "sheepdog_batch_wait_seconds", "route", "store-memory")
	moved(t, before, after, 1, "sheepdog_sink_errors_total", "route", "broken-store", "sink", "http")
	moved(t, before, after, 1, "sheepdog_postgres_pool_connections", "state", "total")
	if after.value("sheepdog_batch_queue_depth", "route", "slow-store") != 0 ||
		after.value("sheepdog_batch_refused_total", "route", "store-memory") != 0 {
		t.Errorf("queue depth or refusals are not there, or not 0 at rest")
	}
	if mf := after["sheepdog_batch_size_items"]; mf != nil {
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h.GetSampleCount() > 0 && h.GetSampleSum() < float64(h.GetSampleCount()) {
				t.Errorf("batch sizes sum %v over %d flushes", h.GetSampleSum(), h.GetSampleCount())
			}
		}
	}
}

// TestMetricsInvalidations: a write through one replica counts an
// invalidation sent there, and one received, with its lag, on the other.
func TestMetricsInvalidations(t *testing.T) {
	_, origin := startOrigin(t)
	redisAddr, prefix := servicetest.RedisAddr(t), servicetest.KeyPrefix(t)
	dsn := servicetest.PostgresDSN(t)
	_, _, adminA := startProxy(t, metricsConfig(t, origin, l2Block(redisAddr, prefix), dsn, "64MiB", "orders"))
	_, addrB, adminB := startProxy(t, metricsConfig(t, origin, l2Block(redisAddr, prefix), dsn, "64MiB", "orders"))
	beforeA, beforeB := scrapeMetrics(t, adminA), scrapeMetrics(t, adminB)
	resp := get(t, rawClient(addrB), "POST", "/api/vultr/postgres/users/user_1/profile", "Content-Type", "application/json", "body", `{"preferences":{}}`)
	if resp.StatusCode() != 200 {
		t.Fatalf("write: %d", resp.StatusCode())
	}
	fasthttp.ReleaseResponse(resp)
	moved(t, beforeB, scrapeMetrics(t, adminB), 1, "sheepdog_invalidations_sent_total")
	deadline := time.Now().Add(2 * time.Second)
	for {
		afterA := scrapeMetrics(t, adminA)
		if afterA.value("sheepdog_invalidations_received_total") >= 1 {
			moved(t, beforeA, afterA, 1, "sheepdog_invalidation_lag_seconds")
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("replica A counted no invalidation received in 2s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fillL1 reads entries of about 2.7 KB into 256 KiB of L1: 70 that fit,
// made hot by ten hits each, then 200 cold ones. L1 evicts to make room,
// and its admission policy turns away newcomers colder than what it
// holds.
func fillL1(p *Proxy, read func(string)) {
	for i := range 70 {
		read(fmt.Sprintf("hot%d", i))
	}
	p.cache.WaitForTest()
	for range 10 {
		for i := range 70 {
			read(fmt.Sprintf("hot%d", i))
		}
	}
	for i := range 200 {
		read(fmt.Sprintf("cold%d", i))
	}
	p.cache.WaitForTest()
}
