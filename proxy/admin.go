package proxy

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/upstream"
)

// adminHandler serves the operator's endpoints on the admin listener.
func (p *Proxy) adminHandler(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/health":
		p.serveHealth(ctx)
	case "/stats":
		p.serveStats(ctx)
	case "/purge":
		p.servePurge(ctx)
	default:
		writeError(ctx, fasthttp.StatusNotFound, "not_found", "no such admin endpoint")
	}
}

// Dependency is one dependency's state as /health reports it.
type Dependency struct {
	State     string  `json:"state"` // ok, degraded or down
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error"`
}

// Health is the /health answer.
type Health struct {
	Status       string                `json:"status"`
	Dependencies map[string]Dependency `json:"dependencies"`
}

func (p *Proxy) serveHealth(ctx *fasthttp.RequestCtx) {
	up := p.health.check()
	h := Health{Status: up.State, Dependencies: map[string]Dependency{"upstream": up}}
	if l2, ok := p.cache.L2Health(); ok {
		// Without Valkey, Sheepdog still answers from L1 and the app:
		// degraded, never down.
		h.Dependencies["l2"] = Dependency{State: l2.State, LatencyMS: l2.LatencyMS, Error: l2.LastError}
		if l2.State != stateOK && h.Status == stateOK {
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
}

// RouteEntry is one route's line in /stats, in route table order.
type RouteEntry struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	RouteStats
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
			e.Cache = rt.stats.cacheSnapshot()
		}
		if b := p.batches[rt]; b != nil {
			e.Batch = b.stats()
		}
		s.Routes = append(s.Routes, e)
	}
	writeJSON(ctx, fasthttp.StatusOK, s)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, fasthttp.StatusInternalServerError, "internal", err.Error())
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
}

func (t *throttledProbe) check() Dependency {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.at.IsZero() && time.Since(t.at) < t.every {
		return t.last
	}
	t.at, t.last = time.Now(), t.probe()
	return t.last
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
