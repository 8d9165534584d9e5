// Package load generates bounded HTTP load against a server on this machine
// and measures it: latency in a log-linear histogram, throughput, answers by
// status class, failures by kind, a per-kind breakdown and a per-second
// series.
//
// A run is bounded three ways: a request count, a duration, and the
// caller's context. It sends only to loopback addresses. It has two modes:
// the closed loop (N clients, each waiting for its answer before sending
// again) measures what a server sustains; the open loop (a fixed arrival
// rate) measures the latency users would see at that rate, counted from when
// each request was due, so a server that falls behind cannot hide its queue
// (the "coordinated omission" of closed-loop tools).
package load

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Config describes one run against one target.
type Config struct {
	// Target is the server's base URL, "http://127.0.0.1:8080" or
	// "localhost:8080". Only localhost and loopback IPs are accepted.
	// Required.
	Target string
	// Source writes each request. Required.
	Source Source
	// Requests caps the requests the run starts; in the open loop, the
	// arrivals, whether sent or dropped. Required, > 0.
	Requests int
	// Duration caps how long the run starts requests. Answers to requests
	// in flight at the end still count, each bounded by Timeout. Required,
	// > 0.
	Duration time.Duration
	// Rate, in requests per second, selects the open loop when > 0.
	// Default 0: the closed loop.
	Rate float64
	// Clients is, in the closed loop, the number of clients sending at
	// once. In the open loop it is the most requests in flight, with as
	// many again waiting for a client; arrivals beyond that are dropped
	// and counted. Default 16.
	Clients int
	// Timeout bounds each request from sending to the end of its answer,
	// and each connection attempt. Default 5s.
	Timeout time.Duration
	// Seed makes the requests repeatable: client i draws from
	// rand.NewPCG(Seed, i). Default 0.
	Seed uint64
	// Progress, when set, is called about once a second from the run's own
	// goroutine, so it must return quickly. Default nil.
	Progress func(Progress)
}

// Defaults for the Config fields left zero.
const (
	DefaultClients = 16
	DefaultTimeout = 5 * time.Second
)

// The run's modes, as Result.Mode names them.
const (
	ModeClosed = "closed"
	ModeOpen   = "open"
)

// Run sends load as cfg says and returns what it measured. It returns only
// when every goroutine it started has stopped (fasthttp's idle-connection
// cleaner, which it cannot stop, exits within a second after). An invalid
// cfg is an error
// and sends nothing. When ctx ends first, every request in flight is cut
// off at once (their connections are closed), and Run returns the partial
// Result with ctx's error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg, tgt, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	r := &run{
		cfg:   cfg,
		host:  tgt.host,
		start: start,
		end:   start.Add(cfg.Duration),
		rec:   newRecorder(start, cfg.Duration+cfg.Timeout),
		conns: newConnSet(ctx, tgt.dial, cfg.Timeout),
	}
	r.client = &fasthttp.HostClient{
		Addr:     tgt.dial,
		Name:     "sheepdog-bench",
		Dial:     r.conns.dial,
		MaxConns: cfg.Clients,
		// One attempt per request: a retry would send work the results
		// never show.
		MaxIdemponentCallAttempts: 1,
		// Short, so that fasthttp's idle-connection cleaner, which we cannot
		// stop, exits soon after the run.
		MaxIdleConnDuration:    time.Second,
		ReadBufferSize:         16 << 10,
		DisablePathNormalizing: true,
	}

	finished := make(chan struct{})
	var owners sync.WaitGroup
	owners.Go(func() { r.conns.closeOnDone(finished) })
	if cfg.Progress != nil {
		owners.Go(func() { r.report(finished) })
	}
	if cfg.Rate > 0 {
		r.openLoop(ctx)
	} else {
		r.closedLoop(ctx)
	}
	elapsed := time.Since(start)
	close(finished)
	owners.Wait()
	r.client.CloseIdleConnections()
	r.conns.closeAll()

	res := r.rec.result(elapsed)
	res.Target, res.Clients, res.Rate = cfg.Target, cfg.Clients, cfg.Rate
	res.Mode = ModeClosed
	if cfg.Rate > 0 {
		res.Mode = ModeOpen
	}
	return res, ctx.Err()
}

func (c Config) withDefaults() (Config, target, error) {
	tgt, err := parseTarget(c.Target)
	if err != nil {
		return c, tgt, fmt.Errorf("load: %w", err)
	}
	switch {
	case c.Source == nil:
		return c, tgt, errors.New("load: no Source")
	case c.Requests <= 0:
		return c, tgt, errors.New("load: Requests must be > 0")
	case c.Duration <= 0:
		return c, tgt, errors.New("load: Duration must be > 0")
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return c, tgt, errors.New("load: Rate must be a finite number >= 0")
	case c.Clients < 0 || c.Timeout < 0:
		return c, tgt, errors.New("load: Clients and Timeout must not be negative")
	}
	if c.Clients == 0 {
		c.Clients = DefaultClients
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c, tgt, nil
}

// run is the state of one Run.
type run struct {
	cfg    Config
	host   string
	start  time.Time
	end    time.Time // no request starts after it
	rec    *recorder
	conns  *connSet
	client *fasthttp.HostClient
}

// closedLoop runs cfg.Clients clients until a bound is reached.
func (r *run) closedLoop(ctx context.Context) {
	var started atomic.Int64
	take := func() bool {
		return ctx.Err() == nil && time.Now().Before(r.end) && started.Add(1) <= int64(r.cfg.Requests)
	}
	var wg sync.WaitGroup
	for i := range r.cfg.Clients {
		wg.Go(func() {
			c := r.newClient(i)
			defer c.release()
			for take() {
				c.send(ctx, time.Now())
			}
		})
	}
	wg.Wait()
}

// openLoop schedules arrivals at cfg.Rate and lets cfg.Clients clients
// serve them. The channel's buffer is the waiting line: an arrival that
// finds it full is dropped rather than queued without bound.
func (r *run) openLoop(ctx context.Context) {
	due := make(chan time.Time, r.cfg.Clients)
	var wg sync.WaitGroup
	for i := range r.cfg.Clients {
		wg.Go(func() {
			c := r.newClient(i)
			defer c.release()
			for at := range due {
				if ctx.Err() != nil {
					r.rec.canceled.Add(1)
					continue
				}
				c.send(ctx, at)
			}
		})
	}
	r.schedule(ctx, due)
	wg.Wait()
}

// schedule sends each arrival's due time on due, then closes it. Arrivals
// are computed from the start, not from the previous one, so a late timer
// never slows the rate: the arrivals it missed go out at once, each keeping
// its own due time.
func (r *run) schedule(ctx context.Context, due chan<- time.Time) {
	defer close(due)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	interval := float64(time.Second) / r.cfg.Rate
	for i := range r.cfg.Requests {
		at := r.start.Add(time.Duration(float64(i) * interval))
		if !at.Before(r.end) {
			return
		}
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		select {
		case due <- at:
		default:
			r.rec.dropped.Add(1)
		}
	}
}

// report calls cfg.Progress once a second until finished is closed.
func (r *run) report(finished <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-finished:
			return
		case now := <-tick.C:
			r.cfg.Progress(r.rec.progress(now))
		}
	}
}

// client is one worker: its own randomness, request and response, and a
// cache of the kinds it has met so that recording takes no lock.
type client struct {
	run   *run
	rnd   *rand.Rand
	req   *fasthttp.Request
	resp  *fasthttp.Response
	kinds map[string]*tally
}

func (r *run) newClient(i int) *client {
	return &client{
		run:   r,
		rnd:   rand.New(rand.NewPCG(r.cfg.Seed, uint64(i))),
		req:   fasthttp.AcquireRequest(),
		resp:  fasthttp.AcquireResponse(),
		kinds: make(map[string]*tally),
	}
}

func (c *client) release() {
	fasthttp.ReleaseRequest(c.req)
	fasthttp.ReleaseResponse(c.resp)
}

// send makes one request that was due at intended and records its outcome.
func (c *client) send(ctx context.Context, intended time.Time) {
	r := c.run
	c.req.Reset()
	name := r.cfg.Source.Next(c.rnd, c.req)
	uri := c.req.URI()
	uri.SetScheme("http")
	uri.SetHost(r.host)
	k, ok := c.kinds[name]
	if !ok {
		k = r.rec.kind(name)
		c.kinds[name] = k
	}
	r.rec.sent.Add(1)
	err := r.client.DoTimeout(c.req, c.resp, r.cfg.Timeout)
	end := time.Now()
	switch {
	case err == nil:
		r.rec.answer(k, intended, end, c.resp.StatusCode())
	case ctx.Err() != nil:
		r.rec.canceled.Add(1) // cut off by the stop, not the server's doing
	default:
		r.rec.fail(k, intended, end, Classify(err))
	}
}
