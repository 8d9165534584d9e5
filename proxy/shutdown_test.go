package proxy

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// TestShutdownFinishesInFlight starts slow requests, shuts down while they
// wait on the app, and expects every one answered in full.
func TestShutdownFinishesInFlight(t *testing.T) {
	// On a pass route each request streams from the app; on a cache route
	// they miss, five keys of four requests each, leaders and waiters.
	for _, tc := range []struct {
		name string
		cfg  func(t *testing.T, originAddr string) *configs.Config
	}{
		{"pass", func(t *testing.T, originAddr string) *configs.Config { return testConfig(t, originAddr, "") }},
		{"cache miss", func(t *testing.T, originAddr string) *configs.Config { return cacheConfig(t, originAddr, "") }},
	} {
		t.Run(tc.name, func(t *testing.T) { shutdownFinishesInFlight(t, tc.cfg) })
	}
}

func shutdownFinishesInFlight(t *testing.T, cfg func(t *testing.T, originAddr string) *configs.Config) {
	app, originAddr := startOrigin(t)
	app.SetLatency("echo", 300*time.Millisecond)
	p, addr, served := serveUntilShutdown(t, cfg(t, originAddr))
	c := rawClient(addr)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(fmt.Sprintf("/__origin/echo?size=100000&v=%d", i%5))
			req.Header.SetHost("t")
			if err := c.Do(req, resp); err != nil {
				errs <- err.Error()
				return
			}
			if resp.StatusCode() != 200 || len(resp.Body()) != 100000 {
				errs <- fmt.Sprintf("answer %d with %d bytes", resp.StatusCode(), len(resp.Body()))
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // all twenty are now waiting on the app
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("in-flight request lost: %s", e)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown took %v", took)
	}
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Errorf("still accepting after shutdown")
	}
}

// serveUntilShutdown serves cfg on free loopback ports for a test that
// shuts the proxy down itself; served gets Serve's result.
func serveUntilShutdown(t *testing.T, cfg *configs.Config) (p *Proxy, addr string, served <-chan error) {
	t.Helper()
	p, addr, _, served = serveProxy(t, cfg)
	return p, addr, served
}

// TestShutdownBeforeServe shuts a proxy down at once after starting Serve,
// before Serve may have taken its listeners (a SIGTERM at start-up), and
// again before Serve is even called: Serve must return either way.
func TestShutdownBeforeServe(t *testing.T) {
	_, originAddr := startOrigin(t)
	for i := range 50 {
		p, _, _, done := serveProxy(t, testConfig(t, originAddr, ""))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := p.Shutdown(ctx); err != nil {
			t.Fatalf("round %d: shutdown: %v", i, err)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: serve: %v", i, err)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("round %d: Serve still running 2s after Shutdown returned", i)
		}
	}
	p, err := New(testConfig(t, originAddr, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	ln, adminLn := listen(t), listen(t)
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln, adminLn) }()
	select {
	case <-served:
	case <-time.After(2 * time.Second):
		t.Fatal("Serve after Shutdown still running after 2s")
	}
}

// TestShutdownPublishesDrainedWrites: a write the app takes while shutdown
// drains has its invalidation published before its caller is answered;
// shutdown's end of the request's context does not cut that short.
func TestShutdownPublishesDrainedWrites(t *testing.T) {
	origin, _ := startRawOriginFunc(t, func(*fasthttp.Request) (string, bool) {
		time.Sleep(400 * time.Millisecond)
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	cfg := cacheConfig(t, origin, l2Block(servicetest.RedisAddr(t), servicetest.KeyPrefix(t)))
	p, addr, _, done := serveProxy(t, cfg)
	got := make(chan int, 1)
	go func() {
		resp := get(t, rawClient(addr), "POST", "/api/vultr/postgres/users/u1/profile", "body", `{}`)
		got <- resp.StatusCode()
		fasthttp.ReleaseResponse(resp)
	}()
	time.Sleep(150 * time.Millisecond) // the write is at the app
	stopProxy(t, p, done)
	if status := <-got; status != 200 {
		t.Errorf("the drained write got %d", status)
	}
	if n := p.invFailed.Load(); n != 0 {
		t.Errorf("the drained write's invalidation failed (%d): answered before its tags were published", n)
	}
}
