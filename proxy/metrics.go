package proxy

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/coalesce"
)

// Metrics, on the admin listener's GET /metrics in Prometheus text.
// What the proxy already counts (answers per route and tier, the cache's
// and the batchers' counters, the pools) is read when /metrics is asked,
// so the hot path pays nothing for it; only latencies, batch shapes,
// sink errors and invalidation lag are observed as they happen.
type metrics struct {
	reg *prometheus.Registry

	upstream   *prometheus.HistogramVec // route
	upstreamN  *prometheus.CounterVec   // route: DESIGN.md's upstream_requests_total
	batchItems *prometheus.HistogramVec // route
	sinkItems  *prometheus.HistogramVec // sink: DESIGN.md's batch_items
	batchWait  *prometheus.HistogramVec // route
	sinkErrors *prometheus.CounterVec   // route, sink
	invLag     prometheus.Histogram

	// upstreamBy and upstreamNBy are upstream's and upstreamN's child per
	// route, made once.
	upstreamBy  map[*route]prometheus.Observer
	upstreamNBy map[*route]prometheus.Counter
}

const metricsNamespace = "sheepdog"

// newMetrics builds the registry of p; prev, the metrics of the generation
// p replaces, lends its histograms and counters so they go on counting.
func newMetrics(p *Proxy, version string, prev *metrics) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "upstream_request_duration_seconds",
			Help:    "Time from sending a request to the app to having its answer's headers, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		upstreamN: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "upstream_requests_total",
			Help: "Calls to the app, by route.",
		}, []string{"route"}),
		sinkItems: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "batch_items",
			Help:    "Items per sink call, by sink (valkey, postgres, http), split retries included.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500},
		}, []string{"sink"}),
		batchItems: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "batch_size_items",
			Help:    "Items per call of a batch route's sink, split retries included.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500},
		}, []string{"route"}),
		batchWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "batch_wait_seconds",
			Help:    "How long a batch's oldest item waited before its flush began.",
			Buckets: []float64{.0001, .0005, .001, .002, .005, .01, .025, .05, .1, .5, 1},
		}, []string{"route"}),
		sinkErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "sink_errors_total",
			Help: "Calls of a batch route's sink that failed, split retries included.",
		}, []string{"route", "sink"}),
		invLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "invalidation_lag_seconds",
			Help:    "From another replica's publish of an invalidation to its arrival here.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		upstreamBy:  make(map[*route]prometheus.Observer, len(p.router.routes)),
		upstreamNBy: make(map[*route]prometheus.Counter, len(p.router.routes)),
	}
	if prev != nil {
		m.upstream, m.upstreamN, m.batchItems, m.sinkItems = prev.upstream, prev.upstreamN, prev.batchItems, prev.sinkItems
		m.batchWait, m.sinkErrors, m.invLag = prev.batchWait, prev.sinkErrors, prev.invLag
	}
	for _, rt := range p.router.routes {
		m.upstreamBy[rt] = m.upstream.WithLabelValues(rt.name)
		m.upstreamNBy[rt] = m.upstreamN.WithLabelValues(rt.name)
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "build_info", Help: "Always 1: the version that runs.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	build.Set(1)
	m.reg.MustRegister(m.upstream, m.upstreamN, m.batchItems, m.sinkItems, m.batchWait, m.sinkErrors, m.invLag, build, stateCollector{p})
	p.cache.OnInvalidationLag(func(d time.Duration) { m.invLag.Observe(d.Seconds()) })
	return m
}

// observeUpstream records one call to the app on behalf of rt (nil: no
// route, not recorded).
func (m *metrics) observeUpstream(rt *route, d time.Duration) {
	if o := m.upstreamBy[rt]; o != nil {
		o.Observe(d.Seconds())
		m.upstreamNBy[rt].Inc()
	}
}

// flushObserver records every flush of a batch route: its size and wait,
// its failure, and, with traces on, a span linked to each of its requests.
func (p *Proxy) flushObserver(route, sink string) func(context.Context, coalesce.FlushInfo) (context.Context, func(error)) {
	items := p.metrics.batchItems.WithLabelValues(route)
	sinkItems := p.metrics.sinkItems.WithLabelValues(sink)
	wait := p.metrics.batchWait.WithLabelValues(route)
	errs := p.metrics.sinkErrors.WithLabelValues(route, sink)
	var trace func(context.Context, coalesce.FlushInfo) (context.Context, func(error))
	if p.tracer != nil {
		trace = p.traceFlush(route, sink)
	}
	return func(ctx context.Context, f coalesce.FlushInfo) (context.Context, func(error)) {
		items.Observe(float64(f.Items))
		sinkItems.Observe(float64(f.Items))
		wait.Observe(f.Wait.Seconds())
		var endSpan func(error)
		if trace != nil {
			ctx, endSpan = trace(ctx, f)
		}
		return ctx, func(err error) {
			if err != nil {
				errs.Inc()
			}
			if endSpan != nil {
				endSpan(err)
			}
		}
	}
}

// serveMetrics answers GET /metrics in Prometheus' text format.
func (p *Proxy) serveMetrics(ctx *fasthttp.RequestCtx) {
	families, err := p.metrics.reg.Gather()
	if err != nil {
		writeError(ctx, fasthttp.StatusInternalServerError, codeInternal, err.Error())
		return
	}
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	ctx.Response.Header.SetContentType(string(format))
	ctx.Response.Header.Set("Cache-Control", "no-store")
	enc := expfmt.NewEncoder(ctx, format)
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			return // the client went away
		}
	}
}

// stateCollector reads, at scrape time, the counters and gauges the
// proxy keeps anyway.
type stateCollector struct{ p *Proxy }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metricsNamespace+"_"+name, help, labels, nil)
}

var (
	descRequests      = desc("requests_total", "Answers by route and status class (unrouted: route \"\").", "route", "code")
	descCacheRequests = desc("cache_requests_total", "Answers on cache routes by how the cache served them.", "route", "status")
	descCoalesced     = desc("coalesced_waiters_total", "Requests answered by another request's upstream fetch: upstream calls saved.", "route")
	descCoalescedAll  = desc("coalesced_total", "coalesced_waiters_total over every route, DESIGN.md's name.")
	descCacheHits     = desc("cache_hits_total", "Fresh cache hits, by tier (l1, l2), DESIGN.md's name.", "tier")
	descL1Hits        = desc("l1_hits_total", "L1 (in-process) cache hits.")
	descL1Misses      = desc("l1_misses_total", "L1 cache misses.")
	descL1Evictions   = desc("l1_evictions_total", "Entries L1 pushed out to make room.")
	descL1Rejected    = desc("l1_rejected_total", "Entries L1's admission policy refused, or its buffers dropped.", "reason")
	descL1Bytes       = desc("l1_bytes", "Bytes L1 holds now.")
	descL1MaxBytes    = desc("l1_max_bytes", "L1's bound in bytes.")
	descL2Hits        = desc("l2_hits_total", "L2 (Valkey) cache hits.")
	descL2Misses      = desc("l2_misses_total", "L2 cache misses.")
	descL2Errors      = desc("l2_errors_total", "L2 round trips that failed, or were skipped by the open breaker.", "kind")
	descL2Writes      = desc("l2_writes_total", "Entries handed to the L2 writer, by outcome.", "outcome")
	descQueue         = desc("batch_queue_depth", "Items waiting for a flush now.", "route")
	descRefused       = desc("batch_refused_total", "Writes refused with 503 because the route's queue was full.", "route")
	descValkeyConns   = desc("valkey_pool_connections", "Connections of a Valkey client's pool.", "client", "state")
	descValkeyWaits   = desc("valkey_pool_timeouts_total", "Waits for a pooled Valkey connection that timed out.", "client")
	descPostgresConns = desc("postgres_pool_connections", "Connections of the postgres sinks' pool (waiting: flushes waiting for one).", "state")
	descInvSent       = desc("invalidations_sent_total", "Invalidations this replica published.")
	descInvReceived   = desc("invalidations_received_total", "Other replicas' invalidations that reached this one.")
	descInvFailed     = desc("invalidation_failures_total", "Invalidations that could not reach L2 or the other replicas.")
	descInvRetried    = desc("invalidation_tags_retried_total", "Tags of failed invalidations sent again, and then taken.")
	descInvLost       = desc("invalidation_tags_lost_total", "Tags of failed invalidations too many to hold; a ban of every entry is sent for them instead.")
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	requests := func(route string, s *routeStats) {
		for i := range s.classes {
			counter(descRequests, s.classes[i].Load(), route, string(rune('1'+i))+"xx")
		}
	}
	// Over every route, those a reload removed included, for DESIGN.md's names.
	hitsL1, hitsL2, coalesced := p.dropped.hitsL1.Load(), p.dropped.hitsL2.Load(), p.dropped.coalesced.Load()
	for _, rt := range p.router.routes {
		requests(rt.name, rt.stats)
		// Summed whatever the route is now: one that a reload made a
		// pass route keeps what it counted as a cache route.
		hitsL1 += rt.stats.hitsL1.Load()
		hitsL2 += rt.stats.hitsL2.Load()
		coalesced += rt.stats.coalesced.Load()
		if rt.cache != nil {
			s := rt.stats
			for _, o := range []struct {
				status string
				n      uint64
			}{
				{"hit_l1", s.hitsL1.Load()}, {"hit_l2", s.hitsL2.Load()}, {"miss", s.missAnswers.Load()},
				{"stale", s.stale.Load()}, {"collapsed", s.coalesced.Load()}, {"bypass", s.bypassed.Load()},
			} {
				counter(descCacheRequests, o.n, rt.name, o.status)
			}
			counter(descCoalesced, s.coalesced.Load(), rt.name)
		}
		if b := p.batches[rt]; b != nil {
			s := b.batcher().Stats()
			gauge(descQueue, float64(s.Queued), rt.name)
			counter(descRefused, uint64(s.Refused), rt.name)
		}
	}
	requests("", p.unrouted)
	counter(descCacheHits, hitsL1, "l1")
	counter(descCacheHits, hitsL2, "l2")
	counter(descCoalescedAll, coalesced)

	cs := p.cache.Stats()
	counter(descL1Hits, cs.L1.Hits)
	counter(descL1Misses, cs.L1.Misses)
	counter(descL1Evictions, cs.L1.Evictions)
	counter(descL1Rejected, cs.L1.Rejected, "admission")
	counter(descL1Rejected, cs.L1.Dropped, "buffer_full")
	gauge(descL1Bytes, float64(cs.L1.BytesInUse))
	gauge(descL1MaxBytes, float64(cs.L1.MaxBytes))
	if pool, ok := p.cache.L2Pool(); ok {
		counter(descL2Hits, cs.L2.Hits)
		counter(descL2Misses, cs.L2.Misses)
		counter(descL2Errors, cs.L2.Errors, "failed")
		counter(descL2Errors, cs.L2.Skipped, "skipped")
		counter(descL2Writes, cs.L2.Written, "written")
		counter(descL2Writes, cs.L2.WritesFailed, "failed")
		counter(descL2Writes, cs.L2.WritesDropped, "dropped")
		valkeyPool(ch, "l2", pool)
	}
	for i, client := range p.valkeyClients {
		valkeyPool(ch, fmt.Sprintf("sink-%d", i+1), client.PoolStats())
	}
	if p.pgPool != nil {
		st := p.pgPool.Stat()
		var waiting int32
		for _, b := range p.batches {
			if b.pgSink != nil {
				waiting += b.pgSink.PoolStats().WaitingCount
			}
		}
		gauge(descPostgresConns, float64(st.TotalConns()), "total")
		gauge(descPostgresConns, float64(st.IdleConns()), "idle")
		gauge(descPostgresConns, float64(st.AcquiredConns()), "acquired")
		gauge(descPostgresConns, float64(waiting), "waiting")
	}
	counter(descInvSent, cs.InvalidationsSent)
	counter(descInvReceived, cs.InvalidationsReceived)
	counter(descInvFailed, p.invFailed.Load())
	counter(descInvRetried, cs.InvalidationsRetried)
	counter(descInvLost, cs.InvalidationsLost)
}

func valkeyPool(ch chan<- prometheus.Metric, client string, s *redis.PoolStats) {
	for _, c := range []struct {
		state string
		n     uint32
	}{{"total", s.TotalConns}, {"idle", s.IdleConns}, {"stale", s.StaleConns}} {
		ch <- prometheus.MustNewConstMetric(descValkeyConns, prometheus.GaugeValue, float64(c.n), client, c.state)
	}
	ch <- prometheus.MustNewConstMetric(descValkeyWaits, prometheus.CounterValue, float64(s.Timeouts), client)
}
