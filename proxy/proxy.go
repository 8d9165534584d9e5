// Package proxy is Sheepdog's front: the fasthttp server, route matching,
// the cache, batch and pass handlers, error mapping and the admin
// endpoints. It wires the other packages together.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/style-shepherd/sheepdog/cachelayer"
	"github.com/style-shepherd/sheepdog/coalesce"
	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/upstream"
)

// Proxy is one running Sheepdog: the client-facing server and the admin
// server over one route table.
type Proxy struct {
	cfg      *configs.Config
	log      *slog.Logger
	router   *router
	upstream *upstream.Client
	health   *throttledProbe
	maxBody  int
	unrouted *routeStats // requests no route took
	started  time.Time

	cache      *cachelayer.Cache
	flight     coalesce.Flight[*fetched]
	refreshing sync.Map       // flight keys with a background refresh under way
	background sync.WaitGroup // background refreshes, waited for by Shutdown
	invFailed  *atomic.Uint64 // invalidations that could not reach L2 or the other replicas; every generation's

	// Batch routes' Batchers, and the stores their sinks own: built by
	// New, closed by Shutdown after the server takes no more requests.
	batches       map[*route]*batchRoute
	valkeyClients []redis.UniversalClient
	pgPool        *pgxpool.Pool
	pgHealth      *throttledProbe // set when a postgres sink is
	board         *healthBoard    // /health's memory beyond the upstream probe
	errors        *errorRing      // the last errors answered, for /stats
	errLog        *errLog         // when each error was last logged
	dropped       *droppedTotals  // counts of routes a reload removed, for the summed metrics

	// Traces: tracer is nil when they are off. ownTracer is the
	// provider New built from telemetry.traces, shut down by Shutdown.
	tracer       trace.Tracer
	propagator   propagation.TextMapPropagator
	ownTracer    *sdktrace.TracerProvider
	upstreamHost string
	upstreamPort int

	metrics *metrics
	version string // for sheepdog_build_info

	server *fasthttp.Server
	admin  *fasthttp.Server
	// listeners holds what Serve was given, for Shutdown to close: fasthttp
	// closes only the listeners its Serve has already taken, so a Shutdown
	// at start-up could otherwise leave Serve running. stopping is set
	// once Shutdown has begun; Serve then returns at once.
	listenersMu sync.Mutex
	listeners   []net.Listener
	stopping    bool

	// Reloads (reload.go). The Proxy New returns serves its first config
	// itself; a reload puts the next generation in live.
	generation
	loader   func() (*configs.Config, error) // nil: reloads refused
	live     atomic.Pointer[Proxy]
	reloadMu sync.Mutex     // one reload at a time, none once Shutdown begins
	status   *reloadStatus  // shared by the generations, for /health
	retiring sync.WaitGroup // generations finishing their requests
}

// Option changes how New builds a Proxy.
type Option func(*Proxy)

// WithVersion names the version that runs, for sheepdog_build_info.
func WithVersion(v string) Option {
	return func(p *Proxy) { p.version = v }
}

// New builds a Proxy from a loaded config. It opens no listener.
func New(cfg *configs.Config, log *slog.Logger, opts ...Option) (*Proxy, error) {
	p, err := newGeneration(cfg, log, nil, opts...)
	if err != nil {
		return nil, err
	}
	p.status = &reloadStatus{loaded: time.Now().UTC(), file: cfg.Source}
	errLog := fasthttpLogger{p}
	p.server = &fasthttp.Server{
		Handler:      p.Handler,
		ErrorHandler: p.serverError,
		// Sheepdog adds no header of its own to an answer. Date is
		// fasthttp's: it writes the current second, replacing the app's
		// (the same second on one machine) and adding one where the app
		// sent none, as RFC 9110 §6.6.1 asks of a proxy with a clock.
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		// Bodies are streamed; fasthttp reads ahead at most 8 KB and
		// Sheepdog enforces max_body_size itself (pass.go).
		StreamRequestBody:            true,
		MaxRequestBodySize:           int(cfg.Server.MaxBodySize),
		DisablePreParseMultipartForm: true,
		ReadBufferSize:               int(cfg.Server.MaxHeaderSize),
		ReadTimeout:                  cfg.Server.ReadTimeout,
		WriteTimeout:                 cfg.Server.WriteTimeout,
		IdleTimeout:                  cfg.Server.IdleTimeout,
		Concurrency:                  fasthttpConcurrency(cfg.Server.MaxConns),
		CloseOnShutdown:              true,
		// A malformed request is logged without its contents, which
		// may hold credentials.
		SecureErrorLogMessage: true,
		Logger:                errLog,
	}
	p.admin = &fasthttp.Server{
		Handler: p.adminRoot,
		// A request fasthttp cannot read is answered in Sheepdog's JSON
		// error shape here too; a purge or reload body is small.
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			status, code, msg := serverErrorStatus(err)
			writeError(ctx, status, code, msg)
		},
		MaxRequestBodySize:    adminMaxBody,
		NoDefaultServerHeader: true,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		IdleTimeout:           time.Minute,
		CloseOnShutdown:       true,
		SecureErrorLogMessage: true, // a request may carry the admin token
		Logger:                errLog,
	}
	return p, nil
}

// adminMaxBody bounds an admin request's body: a purge names a URL, tags or
// a prefix, and /reload reads none.
const adminMaxBody = 1 << 20

// newGeneration builds what serves one config: routes, upstream client,
// cache, batch routes and their stores. prev, when set, is the generation
// it replaces: the counters, the tracer and (if the cache block is the
// same) the cache carry over from it.
func newGeneration(cfg *configs.Config, log *slog.Logger, prev *Proxy, opts ...Option) (*Proxy, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rt, err := newRouter(cfg.Routes)
	if err != nil {
		return nil, err
	}
	up, err := upstream.New(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		cfg:       cfg,
		log:       log,
		router:    rt,
		upstream:  up,
		health:    &throttledProbe{every: time.Second, probe: probeUpstream(up)},
		maxBody:   int(cfg.Server.MaxBodySize),
		started:   time.Now(),
		unrouted:  new(routeStats),
		errors:    new(errorRing),
		errLog:    new(errLog),
		dropped:   new(droppedTotals),
		invFailed: new(atomic.Uint64),
		version:   "dev",
	}
	p.flight.Timeout = cfg.Upstream.Timeout
	p.setUpstreamAddr()
	if prev != nil {
		p.inherit(prev)
	}
	for _, o := range opts {
		o(p)
	}
	if p.cache == nil {
		if p.cache, err = cachelayer.New(cfg.Cache, log); err != nil {
			return nil, err
		}
		p.cacheUsers = new(atomic.Int32) // set here only when built here
		p.cacheUsers.Store(1)
	}
	// closeOwn undoes what this generation built if a later step fails.
	closeOwn := func() {
		if p.cacheUsers != nil { // built here: an inherited one is counted only once this serves
			p.cache.Close()
		}
		if p.ownTracer != nil {
			_ = p.ownTracer.Shutdown(context.Background()) // nothing was traced yet
		}
	}
	if p.tracer == nil {
		tp, err := newTracerProvider(context.Background(), cfg.Telemetry)
		if err != nil {
			closeOwn()
			return nil, err
		}
		if tp != nil {
			p.ownTracer = tp
			p.setTracer(tp)
		}
	}
	var prevMetrics *metrics
	if prev != nil {
		prevMetrics = prev.metrics
	}
	p.metrics = newMetrics(p, p.version, prevMetrics)
	if err := p.buildBatches(); err != nil {
		closeOwn()
		return nil, err
	}
	if p.pgPool != nil {
		p.pgHealth = &throttledProbe{every: time.Second, probe: probePostgres(p.pgPool)}
	}
	p.board = p.newHealthBoard()
	return p, nil
}

// Handler serves one client request. It is exported for benchmarks and
// for embedding Sheepdog in another fasthttp server.
func (p *Proxy) Handler(ctx *fasthttp.RequestCtx) {
	conn := ctx.ConnID()
	g := p.enter(conn)
	defer g.exit(conn)
	defer g.recoverPanic(ctx)
	if g.tracer != nil {
		g.traced(ctx)
	} else {
		g.handle(ctx)
	}
	g.noteError(ctx)
}

// handle serves a request and returns its route, nil if none matched.
func (p *Proxy) handle(ctx *fasthttp.RequestCtx) *route {
	rv := requestValues{ctx: ctx}
	rt := p.router.match(ctx.Method(), ctx.Path(), &rv.params)
	if rt == nil {
		writeError(ctx, fasthttp.StatusNotFound, codeNoRoute, "no route matches this request")
		p.unrouted.record(fasthttp.StatusNotFound)
		return nil
	}
	if rt.cache != nil {
		p.serveCache(ctx, rt, &rv)
	} else if b := p.batches[rt]; b != nil {
		// The batch path keeps its values on the heap; a copy of its own
		// keeps rv, and so every cache hit, on the stack.
		brv := rv
		p.serveBatch(ctx, rt, &brv, b)
	} else {
		p.passRoute(ctx, rt, &rv)
	}
	rt.stats.record(ctx.Response.StatusCode())
	return rt
}

// recoverPanic turns a panic in a handler, a fault of Sheepdog's, into a
// 500 for its request and a logged stack, rather than the end of the
// process (fasthttp does not recover).
func (p *Proxy) recoverPanic(ctx *fasthttp.RequestCtx) {
	r := recover()
	if r == nil {
		return
	}
	p.log.Error("panic serving a request; answered 500", "panic", fmt.Sprint(r),
		"method", string(ctx.Method()), "path", string(ctx.Path()), "stack", string(debug.Stack()))
	writeError(ctx, fasthttp.StatusInternalServerError, codeInternal, "internal error")
	p.errors.record(ctx, fasthttp.StatusInternalServerError, codeInternal, "internal error") // logged above
}

// serverError answers a request fasthttp could not read (headers too large,
// malformed, too slow) with Sheepdog's JSON error shape.
func (p *Proxy) serverError(ctx *fasthttp.RequestCtx, err error) {
	status, code, msg := serverErrorStatus(err)
	writeError(ctx, status, code, msg)
	p.noteError(ctx) // errors and unrouted are every generation's
	p.unrouted.record(status)
}

// Serve answers clients on ln and operators on adminLn until Shutdown.
// It returns the first error of either server.
func (p *Proxy) Serve(ln, adminLn net.Listener) error {
	p.listenersMu.Lock()
	if p.stopping {
		p.listenersMu.Unlock()
		return errors.Join(ln.Close(), adminLn.Close())
	}
	p.listeners = append(p.listeners, ln, adminLn)
	p.listenersMu.Unlock()
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	failed := func(err error) { p.logLibrary("accepting a connection failed; retrying: " + err.Error()) }
	served := &limitListener{Listener: newSteadyListener(ln, failed), max: math.MaxInt64, closer: newCloser()}
	if max := p.cfg.Server.MaxConns; max > 0 {
		served.max = int64(max)
	}
	go func() { defer wg.Done(); errs <- p.server.Serve(served) }()
	go func() { defer wg.Done(); errs <- p.admin.Serve(newSteadyListener(adminLn, failed)) }()
	err := <-errs
	if err != nil {
		// One server failed: stop the other rather than run half a proxy.
		p.admin.Shutdown()  //nolint:errcheck // already failing
		p.server.Shutdown() //nolint:errcheck
	}
	wg.Wait()
	if err == nil {
		err = <-errs
	}
	return err
}

// Shutdown stops accepting connections and waits, until ctx ends, for the
// requests in flight to be answered. Idle keep-alive connections are closed
// at once; busy ones after their answer. Then every batch route's queue is
// flushed, so nothing a caller was told is written goes unwritten.
func (p *Proxy) Shutdown(ctx context.Context) error {
	// The listeners close first: a Serve that has not yet taken one finds
	// it closed and returns, rather than accept after fasthttp's shutdown
	// has looked and found nothing to wait for. fasthttp then reports
	// closing them again, which is no failure.
	p.listenersMu.Lock()
	p.stopping = true
	for _, ln := range p.listeners {
		_ = ln.Close()
	}
	p.listenersMu.Unlock()
	// No reload starts from now on (Reload checks stopping under
	// reloadMu); one under way is waited for, so the generation it puts
	// in place is the one released below. reloadMu is not held on: a
	// POST /reload waiting for it would hold up the admin server's
	// shutdown.
	p.reloadMu.Lock()
	p.reloadMu.Unlock() //nolint:staticcheck // an empty critical section: a barrier
	err := errors.Join(closedIsDone(p.server.ShutdownWithContext(ctx)), closedIsDone(p.admin.ShutdownWithContext(ctx)))
	// Callers still waiting (if the server's wait ran out) are answered
	// by these flushes, or ErrClosed once ctx ends.
	// Generations a reload replaced finish first: their background
	// refreshes may still write to the cache the current one owns.
	done := make(chan struct{})
	go func() { p.retiring.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	err = errors.Join(err, p.current().release(ctx))
	if p.ownTracer != nil {
		// Sends the spans still buffered, within what is left of ctx.
		err = errors.Join(err, p.ownTracer.Shutdown(ctx))
	}
	return err
}

// closedIsDone drops the error of closing a listener already closed.
func closedIsDone(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// fasthttpLogger sends fasthttp's own error lines to slog, once each.
type fasthttpLogger struct{ p *Proxy }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.p.logLibrary(fmt.Sprintf(format, args...))
}
