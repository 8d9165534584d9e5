package shepherd

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Config configures the simulated app. The zero value is ready to use.
type Config struct {
	// Seed chooses the catalogue, the seeded users and their orders: the
	// same seed gives the same bytes. Default (0) 1.
	Seed int64
	// Products is the catalogue size. Default 200.
	Products int
	// Users is how many user profiles are seeded, user_1..user_N, each
	// with a few orders. Writes that name another user fail the way the
	// app's schema makes them fail (see the package comment). Default 20.
	Users int
	// Latency is added to every counted request, standing in for the
	// database or service behind it. Default 0.
	Latency time.Duration
	// RouteLatency overrides Latency per route name (see Routes). Names
	// that are not routes have no effect. Default none.
	RouteLatency map[string]time.Duration
	// Now is the clock for timestamps, ids and TTLs. Default time.Now.
	Now func() time.Time
	// IdleTimeout closes a keep-alive connection idle this long, as Node
	// does after its keepAliveTimeout. Default 5s, Node's.
	IdleTimeout time.Duration
	// RateLimit turns on the app's limiter: 100 requests per 15 minutes
	// per client IP on /api/. Default off, since any benchmark trips it.
	RateLimit bool
}

// Stats counts the requests the app answered, per route name. Test-aid
// requests under /__origin/ other than the echo route are not counted.
type Stats struct {
	Total  uint64            `json:"total"`
	Routes map[string]uint64 `json:"routes"`
}

// App is the simulated Style Shepherd server. It is safe for concurrent use.
type App struct {
	seed    int64
	now     func() time.Time
	routes  []route
	state   map[string]*routeState // fixed at New: read without a lock
	total   atomic.Uint64
	latency atomic.Int64 // the default, in nanoseconds

	catalogue *catalogue
	pg        *postgres
	kv        *valkey
	memories  *memoryStore
	limiter   *rateLimiter // nil when Config.RateLimit is off

	srv       *fasthttp.Server
	closing   chan struct{} // closed by Close: cuts simulated latency short
	closeOnce sync.Once

	mu        sync.Mutex     // protects listeners and closed
	listeners []net.Listener // every listener handed to Serve, closed by Close
	closed    bool
	serving   sync.WaitGroup // the goroutines Start runs
	serveErr  error          // first unexpected error from a Start goroutine; under mu
}

// routeState is one route's counter and latency.
type routeState struct {
	requests atomic.Uint64
	latency  atomic.Int64 // nanoseconds; negative: use the default
}

// Route names outside the app's own table, counted like the others.
const (
	routeEcho      = "echo"      // ANY /__origin/echo
	routeNotFound  = "notfound"  // anything no route matches: 404 Route not found
	routePreflight = "preflight" // OPTIONS, answered by the CORS layer
)

const (
	// appBodyLimit is express.json's limit, '10mb'.
	appBodyLimit = 10 << 20
	// echoBodyLimit is the largest body the echo route takes; the server
	// reads up to it, and the app's own routes refuse more than appBodyLimit.
	echoBodyLimit = 64 << 20
	// headerLimit is Node's default maximum header size.
	headerLimit = 16 << 10
	// idleTimeout is Node's default keep-alive timeout: an idle
	// connection is closed after it, as the real server does.
	idleTimeout = 5 * time.Second
)

// New builds the app and its seeded data.
func New(cfg Config) *App {
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Products <= 0 {
		cfg.Products = 200
	}
	if cfg.Users <= 0 {
		cfg.Users = 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &App{
		seed:    cfg.Seed,
		now:     cfg.Now,
		routes:  appRoutes(),
		state:   make(map[string]*routeState),
		closing: make(chan struct{}),
	}
	for _, name := range a.routeNames() {
		st := &routeState{}
		st.latency.Store(-1)
		a.state[name] = st
	}
	a.latency.Store(int64(cfg.Latency))
	for name, d := range cfg.RouteLatency {
		a.SetLatency(name, d)
	}
	a.catalogue = newCatalogue(cfg.Seed, cfg.Products)
	a.pg = newPostgres(cfg.Seed, cfg.Users, a.catalogue)
	a.kv = newValkey()
	a.memories = newMemoryStore()
	if cfg.RateLimit {
		a.limiter = newRateLimiter(100, 15*time.Minute)
	}
	a.srv = &fasthttp.Server{
		Handler:                      a.Handler,
		ErrorHandler:                 a.requestError,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		MaxRequestBodySize:           echoBodyLimit,
		DisablePreParseMultipartForm: true,
		ReadBufferSize:               headerLimit,
		IdleTimeout:                  cmp.Or(cfg.IdleTimeout, idleTimeout),
		CloseOnShutdown:              true,
		// The worker pool's cleaner sleeps this long between rounds and
		// only then sees that Serve returned: 1 s (not the default 10 s)
		// bounds how long it outlives Close.
		MaxIdleWorkerDuration: time.Second,
		Logger:                quietLogger{},
	}
	return a
}

// quietLogger drops fasthttp's per-connection error lines: a refused
// request has already been answered, as Node answers it, without a log.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

func (a *App) routeNames() []string {
	names := []string{routeEcho, routeNotFound, routePreflight}
	for _, r := range a.routes {
		names = append(names, r.name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Routes returns every route name, sorted: the names SetLatency,
// Config.RouteLatency and Stats use.
func (a *App) Routes() []string { return a.routeNames() }

// SetLatency sets the latency of one route; route "*" sets the default
// that routes without their own use. A negative d on a route returns it
// to the default. Unknown names are ignored.
func (a *App) SetLatency(route string, d time.Duration) {
	if route == "*" {
		a.latency.Store(int64(max(d, 0)))
		return
	}
	if st, ok := a.state[route]; ok {
		st.latency.Store(int64(d))
	}
}

// latencyFor is the latency a request to the named route waits.
func (a *App) latencyFor(route string) time.Duration {
	if st, ok := a.state[route]; ok {
		if d := st.latency.Load(); d >= 0 {
			return time.Duration(d)
		}
	}
	return time.Duration(a.latency.Load())
}

// count records one request to the named route and waits its latency.
// The wait ends early when the app is closing, so Close never waits out
// a long simulated delay.
func (a *App) count(route string) {
	a.total.Add(1)
	if st, ok := a.state[route]; ok {
		st.requests.Add(1)
	}
	d := a.latencyFor(route)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-a.closing:
	}
}

// Stats returns the request counters.
func (a *App) Stats() Stats {
	s := Stats{Total: a.total.Load(), Routes: make(map[string]uint64, len(a.state))}
	for name, st := range a.state {
		s.Routes[name] = st.requests.Load()
	}
	return s
}

// ResetStats zeroes the request counters.
func (a *App) ResetStats() {
	a.total.Store(0)
	for _, st := range a.state {
		st.requests.Store(0)
	}
}

// errClosed is returned by Serve and Start after Close.
var errClosed = errors.New("shepherd: app closed")

// Serve answers connections from ln until Close. It blocks; Close makes
// it return nil.
func (a *App) Serve(ln net.Listener) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		ln.Close()
		return errClosed
	}
	a.listeners = append(a.listeners, ln)
	a.mu.Unlock()
	err := a.srv.Serve(ln)
	if errors.Is(err, net.ErrClosed) && a.isClosed() {
		return nil
	}
	return err
}

func (a *App) isClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// Start listens on addr (use 127.0.0.1:0 for a free port) and serves in a
// goroutine that Close stops and waits for. It returns the bound address.
func (a *App) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("shepherd: listen: %w", err)
	}
	if a.isClosed() {
		ln.Close()
		return "", errClosed
	}
	a.serving.Go(func() {
		if err := a.Serve(ln); err != nil && !errors.Is(err, errClosed) {
			a.mu.Lock()
			if a.serveErr == nil {
				a.serveErr = err
			}
			a.mu.Unlock()
		}
	})
	return ln.Addr().String(), nil
}

// Close stops serving: it finishes the requests in flight (cutting their
// simulated latency short), closes the connections and listeners, and
// waits for the goroutines Start began. It is safe to call more than once.
func (a *App) Close() error {
	a.closeOnce.Do(func() { close(a.closing) })
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	err := a.srv.Shutdown()
	// A Serve that had not yet registered its listener with the server
	// when Shutdown ran still holds it: closing it here ends that Serve.
	a.mu.Lock()
	for _, ln := range a.listeners {
		ln.Close()
	}
	a.mu.Unlock()
	a.serving.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	return errors.Join(err, a.serveErr)
}
