package proxy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/configs"
)

// Reloading. POST /reload on the admin listener, or SIGHUP, reads the
// config file again. A config that loads becomes the next generation: a
// Proxy built as New builds one, without listeners, to which the servers
// hand every request from then on. The generation it replaces finishes
// the requests it holds (within server.shutdown_grace), flushes its
// batches and closes its stores. What carries over: the cache when the
// cache block is unchanged, the counters of routes that keep their name,
// the recent errors, the metrics' histograms, the tracer. A config that
// does not load, or that changes what only a restart can (the listeners,
// the server block, telemetry), leaves the running one in place; the
// error is logged and shown on /health.

// WithReloader lets the Proxy reload: load reads the config again.
func WithReloader(load func() (*configs.Config, error)) Option {
	return func(p *Proxy) { p.loader = load }
}

// generation is what a Proxy keeps as one generation of the config:
// requests under way, and whether a newer one has replaced it.
type generation struct {
	active    [activeShards]activeCount // requests in its handlers, by connection
	retired   atomic.Bool               // replaced: no new request enters
	drained   chan struct{}
	drainOnce sync.Once
	// cacheUsers counts the generations that use the cache, shared by
	// them: a kept cache may still serve an older generation's requests
	// after a newer one that shares it is released; the last to release
	// closes it. A generation inheriting the cache joins the count in
	// Reload, once it is sure to serve; until then it is nil.
	cacheUsers *atomic.Int32

	releaseOnce sync.Once
	releaseErr  error
}

// activeShards spreads the count of requests under way over cache lines,
// by connection, so that requests on two cores do not contend for one
// counter.
const activeShards = 32

type activeCount struct {
	n atomic.Int64
	_ [56]byte
}

// enter returns the generation that serves a request on connection conn
// now, counted in until exit.
func (p *Proxy) enter(conn uint64) *Proxy {
	for {
		g := p.current()
		g.active[conn%activeShards].n.Add(1)
		if !g.retired.Load() {
			return g
		}
		g.exit(conn) // replaced meanwhile: take the next one
	}
}

// exit counts a request out; the last one out of a retired generation
// lets it close.
func (g *Proxy) exit(conn uint64) {
	g.active[conn%activeShards].n.Add(-1)
	if g.retired.Load() && g.idle() {
		g.markDrained()
	}
}

// idle reports whether no request is under way. Once retired is set, a
// request that finds it never stays counted, so the last exit (or retire
// itself) sees every count at zero.
func (g *Proxy) idle() bool {
	for i := range g.active {
		if g.active[i].n.Load() != 0 {
			return false
		}
	}
	return true
}

// markDrained tells retire the last request is out. drained is made
// before the generation can be retired (by nextGeneration, or by Reload
// for the first one).
func (g *Proxy) markDrained() {
	g.drainOnce.Do(func() { close(g.drained) })
}

// current is the generation serving now.
func (p *Proxy) current() *Proxy {
	if g := p.live.Load(); g != nil {
		return g
	}
	return p
}

// inherit takes from the generation it replaces what outlives a config.
func (p *Proxy) inherit(prev *Proxy) {
	p.version = prev.version
	p.started = prev.started
	p.unrouted = prev.unrouted
	p.errors = prev.errors
	p.errLog = prev.errLog
	p.dropped = prev.dropped
	p.invFailed = prev.invFailed
	p.status = prev.status
	p.tracer, p.propagator = prev.tracer, prev.propagator
	for _, rt := range p.router.routes {
		for _, old := range prev.router.routes {
			if old.name == rt.name {
				rt.stats = old.stats
				break
			}
		}
	}
	if reflect.DeepEqual(prev.cfg.Cache, p.cfg.Cache) {
		p.cache = prev.cache // counted as a user in Reload, once this one is sure to serve
	}
}

// release closes what the generation owns once its requests are done:
// its batches are flushed, its background refreshes waited for, its stores
// and (unless handed on) its cache closed. It runs once.
func (g *Proxy) release(ctx context.Context) error {
	g.releaseOnce.Do(func() {
		err := g.closeBatches(ctx)
		done := make(chan struct{})
		go func() { g.background.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = errors.Join(err, ctx.Err())
		}
		if g.cacheUsers != nil && g.cacheUsers.Add(-1) == 0 {
			g.cache.Close()
		}
		g.releaseErr = err
	})
	return g.releaseErr
}

// retire stops new requests from entering g, waits up to grace for those
// inside to finish, and releases it, its batches' last flushes given a
// grace of their own.
func (g *Proxy) retire(grace time.Duration) error {
	g.retired.Store(true)
	if g.idle() {
		g.markDrained()
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-g.drained:
	case <-t.C:
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return g.release(ctx)
}

// errReloadOff answers /reload on a Proxy built without WithReloader.
var errReloadOff = errors.New("this Sheepdog has no config file to reload")

// errShuttingDown refuses a reload that comes once shutdown has begun.
var errShuttingDown = errors.New("shutting down")

// Reload reads the config again and, if it loads, serves it from now on.
// On error the running config stays; the error names the file and line
// where the config is at fault.
func (p *Proxy) Reload() error {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	p.listenersMu.Lock()
	stopping := p.stopping
	p.listenersMu.Unlock()
	if stopping {
		return errShuttingDown
	}
	cur := p.current()
	next, err := p.nextGeneration(cur)
	if err != nil {
		p.status.failed(err)
		p.log.Error("reload failed; the running config stays", "err", err)
		return err
	}
	if next.cache == cur.cache {
		next.cacheUsers = cur.cacheUsers
		next.cacheUsers.Add(1) // until next is released too
	}
	if cur.drained == nil {
		cur.drained = make(chan struct{}) // the first generation's
	}
	p.live.Store(next)
	for _, old := range cur.router.routes {
		if !slices.ContainsFunc(next.router.routes, func(rt *route) bool { return rt.stats == old.stats }) {
			p.dropped.add(old.stats) // so counters summed over routes never go down
		}
	}
	p.status.succeeded()
	p.log.Info("reloaded", "file", next.cfg.Source, "routes", len(next.cfg.Routes), "cache_kept", next.cache == cur.cache)
	grace := cur.cfg.Server.ShutdownGrace
	p.retiring.Add(1)
	go func() {
		defer p.retiring.Done()
		if err := cur.retire(grace); err != nil {
			p.log.Error("retiring the replaced config", "err", err)
		}
	}()
	return nil
}

// nextGeneration loads the config and builds its generation.
func (p *Proxy) nextGeneration(cur *Proxy) (*Proxy, error) {
	if p.loader == nil {
		return nil, errReloadOff
	}
	cfg, err := p.loader()
	if err != nil {
		return nil, err
	}
	if err := restartOnly(cur.cfg, cfg); err != nil {
		return nil, err
	}
	next, err := newGeneration(cfg, cur.log, cur, func(g *Proxy) { g.drained = make(chan struct{}) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Source, err)
	}
	return next, nil
}

// restartOnly refuses a config that changes what the running process
// cannot: its sockets, the server's settings, the trace pipeline.
func restartOnly(old, cfg *configs.Config) error {
	for _, f := range []struct {
		name     string
		was, now any
	}{
		{"listen", old.Listen, cfg.Listen},
		{"admin.listen", old.Admin.Listen, cfg.Admin.Listen},
		{"server", old.Server, cfg.Server},
		{"telemetry", old.Telemetry, cfg.Telemetry},
	} {
		if !reflect.DeepEqual(f.was, f.now) {
			return fmt.Errorf("%s: %s changed: that takes a restart (SIGTERM drains), not a reload", cfg.Source, f.name)
		}
	}
	return nil
}

// adminRoot serves the admin listener: /reload itself, everything else
// by the generation serving now.
func (p *Proxy) adminRoot(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) == "/reload" {
		p.serveReload(ctx)
		p.noteError(ctx)
		return
	}
	g := p.enter(ctx.ConnID())
	g.adminHandler(ctx)
	g.exit(ctx.ConnID())
}

// ReloadAnswer is the answer to a POST /reload that took.
type ReloadAnswer struct {
	Reloaded  bool      `json:"reloaded"`
	File      string    `json:"file"`
	Routes    int       `json:"routes"`
	CacheKept bool      `json:"cache_kept"` // L1 and L2 carried over: the cache block is unchanged
	At        time.Time `json:"at"`
}

func (p *Proxy) serveReload(ctx *fasthttp.RequestCtx) {
	cur := p.current()
	if !ctx.IsPost() {
		notAllowed(ctx, "POST", "reload takes POST")
		return
	}
	if !cur.authorised(ctx) {
		writeError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "reload needs the admin token (Authorization: Bearer …)")
		return
	}
	if err := p.Reload(); err != nil {
		if errors.Is(err, errShuttingDown) {
			writeError(ctx, fasthttp.StatusServiceUnavailable, "shutting_down", "Sheepdog is shutting down: no reload")
			return
		}
		writeError(ctx, fasthttp.StatusUnprocessableEntity, "bad_config", err.Error())
		return
	}
	next := p.current()
	writeJSON(ctx, fasthttp.StatusOK, ReloadAnswer{
		Reloaded: true, File: next.cfg.Source, Routes: len(next.cfg.Routes),
		CacheKept: next.cache == cur.cache, At: time.Now().UTC(),
	})
}

// ConfigState is /health's account of the config: the file, when the
// running config was loaded, and the last reload that failed, if any
// failed since.
type ConfigState struct {
	File     string    `json:"file"`
	LoadedAt time.Time `json:"loaded_at"`
	Reloads  uint64    `json:"reloads"` // that took
	Error    string    `json:"error,omitempty"`
	ErrorAt  time.Time `json:"error_at,omitzero"`
}

// reloadStatus is the ConfigState the generations share.
type reloadStatus struct {
	mu      sync.Mutex // protects the fields below
	file    string
	loaded  time.Time
	reloads uint64
	err     string
	errAt   time.Time
}

func (s *reloadStatus) succeeded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loaded, s.reloads, s.err, s.errAt = time.Now().UTC(), s.reloads+1, "", time.Time{}
}

func (s *reloadStatus) failed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err, s.errAt = err.Error(), time.Now().UTC()
}

func (s *reloadStatus) state() ConfigState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ConfigState{File: s.file, LoadedAt: s.loaded, Reloads: s.reloads, Error: s.err, ErrorAt: s.errAt}
}

// droppedTotals keeps what the routes a reload removed had counted, so
// that counters summed over routes (sheepdog_cache_hits_total,
// sheepdog_coalesced_total) never go down.
type droppedTotals struct {
	hitsL1, hitsL2, coalesced atomic.Uint64
}

func (d *droppedTotals) add(s *routeStats) {
	d.hitsL1.Add(s.hitsL1.Load())
	d.hitsL2.Add(s.hitsL2.Load())
	d.coalesced.Add(s.coalesced.Load())
}
