package proxy

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/upstream"
)

// adminHandler serves the operator's endpoints on the admin listener.
func (p *Proxy) adminHandler(ctx *fasthttp.RequestCtx) {
	switch path := string(ctx.Path()); path {
	case "/":
		if reads(ctx, path) {
			serveStatusPage(ctx)
		}
	case "/health":
		if reads(ctx, path) {
			p.serveHealth(ctx)
		}
	case "/stats":
		if reads(ctx, path) {
			p.serveStats(ctx)
		}
	case "/metrics":
		if reads(ctx, path) {
			p.serveMetrics(ctx)
		}
	case "/favicon.ico":
		// Browsers ask for it; answered here so that it is not a 404 in
		// the recent errors the status page shows.
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	case "/purge":
		p.servePurge(ctx)
	default:
		writeError(ctx, fasthttp.StatusNotFound, "not_found", "no such admin endpoint")
	}
	p.noteError(ctx)
}

// reads reports whether the request is a GET or HEAD, which the endpoints
// that only read take; any other method is answered 405.
func reads(ctx *fasthttp.RequestCtx, path string) bool {
	if ctx.IsGet() || ctx.IsHead() {
		return true
	}
	notAllowed(ctx, "GET, HEAD", path+" answers GET")
	return false
}

// notAllowed answers a method the endpoint does not take: 405, with the
// methods it does take in Allow (RFC 9110 §15.5.6).
func notAllowed(ctx *fasthttp.RequestCtx, allow, msg string) {
	writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", msg)
	ctx.Response.Header.Set(fasthttp.HeaderAllow, allow)
}

// Dependency is one dependency's state as /health reports it.
type Dependency struct {
	State     string  `json:"state"` // ok, degraded or down
	LatencyMS float64 `json:"latency_ms"`
	// Error is the dependency's last failure and ErrorAt when /health
	// first saw it. Both are kept after it recovers, so an outage between
	// two looks still shows; State says whether it is failing now. Error
	// is empty, and ErrorAt left out, if it never failed.
	Error   string    `json:"error"`
	ErrorAt time.Time `json:"error_at,omitzero"`
}

// Health is the /health answer.
type Health struct {
	Status       string                `json:"status"`
	Dependencies map[string]Dependency `json:"dependencies"`
	// Config is the running config's file and load time, and the last
	// reload that failed (the running config stayed).
	Config *ConfigState `json:"config,omitempty"`
}

func (p *Proxy) serveHealth(ctx *fasthttp.RequestCtx) {
	up := p.health.check()
	board := p.board
	h := Health{Status: up.State, Dependencies: map[string]Dependency{"upstream": up}}
	if l2, ok := p.cache.L2Health(); ok {
		// Without Valkey, Sheepdog still answers from L1 and the app:
		// degraded, never down.
		d := board.l2.note(Dependency{State: l2.State, LatencyMS: l2.LatencyMS, Error: l2.LastError})
		h.Dependencies["l2"] = d
		if l2.State != stateOK && h.Status == stateOK {
			h.Status = stateDegraded
		}
	}
	for _, s := range board.sinks {
		// An http sink's endpoint down fails its route's writes alone:
		// degraded. (It is on the app, so the app down is down anyway.)
		d := s.probe.check()
		h.Dependencies[s.name] = d
		if d.State != stateOK && h.Status == stateOK {
			h.Status = stateDegraded
		}
	}
	if p.pgHealth != nil {
		// Only the postgres batch routes need it; they answer 503 while
		// it is down, and everything else goes on.
		pg := p.pgHealth.check()
		h.Dependencies["postgres"] = pg
		if pg.State != stateOK && h.Status == stateOK {
			h.Status = stateDegraded
		}
	}
	if p.status != nil {
		c := p.status.state()
		h.Config = &c
	}
	status := fasthttp.StatusOK
	if h.Status == stateDown {
		status = fasthttp.StatusServiceUnavailable
	}
	writeJSON(ctx, status, h)
}

// Stats is the /stats answer.
type Stats struct {
	UptimeSeconds float64      `json:"uptime_seconds"`
	Routes        []RouteEntry `json:"routes"`
	Unrouted      RouteStats   `json:"unrouted"`
	// Saved sums, over every route, the upstream calls Sheepdog did not
	// make.
	Saved Savings `json:"saved"`
	// RecentErrors are the last errors Sheepdog answered with its JSON
	// error shape, newest first, at most 20. The list is the process's:
	// route names are this route table's match for the path now.
	RecentErrors []RecentError `json:"recent_errors"`
}

// RouteEntry is one route's line in /stats, in route table order.
type RouteEntry struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	// HitRatio, on cache routes, is the share of lookups answered from
	// the cache: (hits_l1 + hits_l2 + stale) / (that + misses). A
	// stale-if-error answer counts as a miss and a stale answer both. It
	// is 0 before the first lookup.
	HitRatio *float64 `json:"hit_ratio,omitempty"`
	RouteStats
}

// Savings is what coalescing, the cache and batching saved the app.
type Savings struct {
	Coalesced uint64 `json:"coalesced"` // answers shared from another request's fetch
	Hits      uint64 `json:"hits"`      // fresh hits, L1 and L2
	// UpstreamRequests is Coalesced + Hits: requests the app never saw.
	UpstreamRequests uint64 `json:"upstream_requests"`
	// BatchCalls is items minus batches over the batch routes: the sink
	// calls that one call per batch replaced.
	BatchCalls int64 `json:"batch_calls"`
}

func (p *Proxy) serveStats(ctx *fasthttp.RequestCtx) {
	s := Stats{
		UptimeSeconds: time.Since(p.started).Seconds(),
		Routes:        make([]RouteEntry, 0, len(p.router.routes)),
		Unrouted:      p.unrouted.snapshot(),
	}
	for _, rt := range p.router.routes {
		e := RouteEntry{Name: rt.name, Action: string(rt.cfg.Action()), RouteStats: rt.stats.snapshot()}
		if rt.cache != nil {
			c := rt.stats.cacheSnapshot()
			e.Cache = c
			hits := c.HitsL1 + c.HitsL2
			ratio := 0.0
			if served := hits + c.Stale; served+c.Misses > 0 {
				ratio = float64(served) / float64(served+c.Misses)
			}
			e.HitRatio = &ratio
			s.Saved.Coalesced += c.Coalesced
			s.Saved.Hits += hits
		}
		if b := p.batches[rt]; b != nil {
			e.Batch = b.stats()
			s.Saved.BatchCalls += e.Batch.Items - e.Batch.Batches
		}
		s.Routes = append(s.Routes, e)
	}
	s.Saved.UpstreamRequests = s.Saved.Coalesced + s.Saved.Hits
	s.RecentErrors = p.errors.snapshot()
	for i := range s.RecentErrors {
		e := &s.RecentErrors[i]
		var params Params
		if rt := p.router.match([]byte(e.Method), []byte(e.Path), &params); rt != nil {
			e.Route = rt.name
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, s)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, fasthttp.StatusInternalServerError, codeInternal, err.Error())
		return
	}
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(append(b, '\n'))
}

const (
	stateOK       = "ok"
	stateDegraded = "degraded"
	stateDown     = "down"

	healthTimeout = 2 * time.Second
)

// throttledProbe asks a dependency at most once per every, however often
// /health is asked; concurrent askers share one probe.
type throttledProbe struct {
	every time.Duration
	probe func() Dependency

	mu   sync.Mutex // protects at and last; held through a probe
	at   time.Time
	last Dependency
	mem  errMemory // the last failure, kept after recovery
}

func (t *throttledProbe) check() Dependency {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.at.IsZero() && time.Since(t.at) < t.every {
		return t.last
	}
	t.at, t.last = time.Now(), t.mem.note(t.probe())
	return t.last
}

// errMemory keeps a dependency's last failure and when it was first seen.
type errMemory struct {
	mu      sync.Mutex // protects msg, at and failing
	msg     string
	at      time.Time
	failing bool // at the last note
}

// note records d's error if d is failing, as a new failure if it was not
// failing at the last note or its message changed (else the same failure
// goes on, and keeps its time), and returns d with the last failure
// filled in, failing now or not.
func (m *errMemory) note(d Dependency) Dependency {
	m.mu.Lock()
	defer m.mu.Unlock()
	failing := d.State != stateOK && d.Error != ""
	if failing && (!m.failing || d.Error != m.msg) {
		m.msg, m.at = d.Error, time.Now().UTC()
	}
	m.failing = failing
	d.Error, d.ErrorAt = m.msg, m.at
	return d
}

// healthBoard is /health's memory beyond the upstream probe.
type healthBoard struct {
	l2    errMemory
	sinks []namedProbe // one per http sink, in route table order
}

// namedProbe is a dependency /health names after its route.
type namedProbe struct {
	name  string // "sink:<route>"
	probe *throttledProbe
}

// newHealthBoard builds the board for the proxy's http sinks; New calls
// it once the batch routes are built.
func (p *Proxy) newHealthBoard() *healthBoard {
	b := &healthBoard{}
	var hc *fasthttp.HostClient
	for _, rt := range p.router.routes {
		rule := rt.cfg.Batch
		if rule == nil || rule.Sink != configs.SinkHTTP || p.batches[rt] == nil {
			continue
		}
		if hc == nil {
			hc = sinkProbeClient(p.cfg.Upstream.URL)
		}
		b.sinks = append(b.sinks, namedProbe{
			name:  "sink:" + rt.name,
			probe: &throttledProbe{every: time.Second, probe: probeSink(hc, rule.URL)},
		})
	}
	return b
}

// sinkProbeClient is a small client of the sinks' host (the app's: an
// http sink's url is a path on it) for their probes alone, so that a
// probe is bounded by healthTimeout and never waits behind the writes.
func sinkProbeClient(upstreamURL string) *fasthttp.HostClient {
	addr := upstreamURL
	if u, err := url.Parse(upstreamURL); err == nil {
		// upstream.New has checked it already.
		addr = u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	return &fasthttp.HostClient{
		Addr:                     addr,
		MaxConns:                 2,
		NoDefaultUserAgentHeader: true,
		ReadTimeout:              healthTimeout,
		WriteTimeout:             healthTimeout,
		MaxIdleConnDuration:      2 * time.Second,
	}
}

// probeSink sends OPTIONS to an http sink's batch endpoint: it writes
// nothing, and the app's CORS layer answers it before its rate limiter.
// No answer is down; a 404 (no such endpoint) or a 5xx is degraded.
func probeSink(hc *fasthttp.HostClient, path string) func() Dependency {
	return func() Dependency {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.Header.SetMethod(fasthttp.MethodOptions)
		req.SetRequestURI(path)
		req.Header.SetHost(hc.Addr)
		start := time.Now()
		err := hc.DoTimeout(req, resp, healthTimeout)
		d := Dependency{State: stateOK, LatencyMS: latencyMS(time.Since(start))}
		switch status := resp.StatusCode(); {
		case err != nil:
			d.State, d.Error = stateDown, "batch endpoint: "+err.Error()
		case status == fasthttp.StatusNotFound || status >= 500:
			d.State, d.Error = stateDegraded, "batch endpoint answered "+fasthttp.StatusMessage(status)
		}
		return d
	}
}

func latencyMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// probeUpstream sends the health path: no answer is down, a 5xx degraded.
func probeUpstream(client *upstream.Client) func() Dependency {
	return func() Dependency {
		status, latency, err := client.Probe(healthTimeout)
		d := Dependency{State: stateOK, LatencyMS: latencyMS(latency)}
		switch {
		case err != nil:
			d.State, d.Error = stateDown, err.Error()
		case status >= 500:
			d.State, d.Error = stateDegraded, "health path answered "+fasthttp.StatusMessage(status)
		}
		return d
	}
}

// probePostgres pings the postgres sinks' pool.
func probePostgres(pool *pgxpool.Pool) func() Dependency {
	return func() Dependency {
		ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
		defer cancel()
		start := time.Now()
		err := pool.Ping(ctx)
		d := Dependency{State: stateOK, LatencyMS: latencyMS(time.Since(start))}
		if err != nil {
			d.State, d.Error = stateDown, err.Error()
		}
		return d
	}
}
