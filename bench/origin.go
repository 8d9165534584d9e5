package main

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
)

// seededUsers is how many users the simulated app seeds: user_1..user_20.
const seededUsers = 20

// origin is the simulated Style Shepherd, served from the bench's own
// process. Its request counter is the one GET /__origin/stats reports:
// read before and after a row, it is the upstream requests the row made.
type origin struct {
	app  *shepherd.App
	addr string

	// With a worker limit the bench serves the app's handler itself.
	srv    *fasthttp.Server
	served chan error
}

// originConfig is how the simulated app is set up.
type originConfig struct {
	latency      time.Duration
	routeLatency map[string]time.Duration
	workers      int // 0: no limit
}

func startOrigin(cfg originConfig) (*origin, error) {
	app := shepherd.New(shepherd.Config{Users: seededUsers, Latency: cfg.latency, RouteLatency: cfg.routeLatency})
	for name := range cfg.routeLatency {
		if !slices.Contains(app.Routes(), name) {
			return nil, fmt.Errorf("-route-latency: no route %q; the app's routes: %s", name, strings.Join(app.Routes(), ", "))
		}
	}
	o := &origin{app: app}
	if cfg.workers == 0 {
		addr, err := app.Start("127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		o.addr = addr
		return o, nil
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	o.addr = ln.Addr().String()
	o.srv = &fasthttp.Server{
		Handler:               workerLimit(cfg.workers, app.Handler),
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
	}
	o.served = make(chan error, 1)
	go func() { o.served <- o.srv.Serve(ln) }()
	return o, nil
}

// workerLimit lets n requests at a time into h; the others wait their
// turn, as requests do for a Node server's pool of database connections.
// A slow origin with a limit has a rate it cannot exceed, so an open loop
// beyond it shows the queue.
func workerLimit(n int, h fasthttp.RequestHandler) fasthttp.RequestHandler {
	slots := make(chan struct{}, n)
	return func(ctx *fasthttp.RequestCtx) {
		slots <- struct{}{}
		defer func() { <-slots }()
		h(ctx)
	}
}

// upstream is how many requests the app has answered so far.
func (o *origin) upstream() uint64 { return o.app.Stats().Total }

// close stops the app, cutting short any simulated latency in flight.
func (o *origin) close() error {
	err := o.app.Close()
	if o.srv != nil {
		err = errors.Join(err, o.srv.Shutdown(), <-o.served)
	}
	return err
}
