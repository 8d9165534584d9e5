package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
	"github.com/style-shepherd/sheepdog/configs"
)

// fixedClock makes the simulated app's timestamps repeatable, so an answer
// through Sheepdog and one straight from the app can be compared byte for byte.
func fixedClock() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }

// startOrigin runs the simulated Style Shepherd on a free loopback port.
func startOrigin(t testing.TB) (*shepherd.App, string) {
	t.Helper()
	app := shepherd.New(shepherd.Config{Now: fixedClock})
	addr, err := app.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("start origin: %v", err)
	}
	t.Cleanup(func() { app.Close() })
	return app, addr
}

// testConfig is a table of pass routes in front of upstream, with extra
// YAML for the server block (limits under test). cacheConfig has the
// cache routes.
func testConfig(t testing.TB, upstream, server string) *configs.Config {
	t.Helper()
	src := fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s, health_path: /api/vultr/health}
server: {%s}
routes:
  - name: products
    match: {method: GET, path: /api/vultr/postgres/products}
    pass: {}
  - name: profile
    match: {method: GET, path: "/api/vultr/postgres/users/{userId}/profile"}
    pass: {}
  - name: echo
    match: {path_prefix: /__origin/}
    pass: {}
  - name: everything-else
    match: {path_prefix: /api/}
    pass: {}
`, upstream, server)
	cfg, err := configs.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// startProxy serves cfg on free loopback ports and returns the client and
// admin addresses; the proxy is shut down when the test ends.
func startProxy(t testing.TB, cfg *configs.Config, opts ...Option) (p *Proxy, addr, admin string) {
	t.Helper()
	p, addr, admin, done := serveProxy(t, cfg, opts...)
	t.Cleanup(func() { stopProxy(t, p, done) })
	return p, addr, admin
}

// stopProxy shuts p down, within 5 s, and waits for its Serve (done).
func stopProxy(t testing.TB, p *Proxy, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// serveProxy serves cfg on free loopback ports, for a test that shuts it
// down itself; done gets Serve's result.
func serveProxy(t testing.TB, cfg *configs.Config, opts ...Option) (p *Proxy, addr, admin string, done <-chan error) {
	t.Helper()
	p, err := New(cfg, nil, opts...)
	if err != nil {
		t.Fatalf("new proxy: %v", err)
	}
	ln, adminLn := listen(t), listen(t)
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln, adminLn) }()
	return p, ln.Addr().String(), adminLn.Addr().String(), served
}

// listen opens a listener on a free loopback port.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// rawClient sends requests exactly as built: no path normalising, no
// retries, no User-Agent of its own.
func rawClient(addr string) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                      addr,
		DisablePathNormalizing:    true,
		NoDefaultUserAgentHeader:  true,
		MaxIdemponentCallAttempts: 1,
		ReadTimeout:               10 * time.Second,
		MaxResponseBodySize:       64 << 20,
	}
}

// TestPanicIsA500: a fault of Sheepdog's in a handler (Handler defers
// recoverPanic) is that request's 500 JSON and a logged stack, not the end
// of the process.
func TestPanicIsA500(t *testing.T) {
	var logs syncBuffer
	_, originAddr := startOrigin(t)
	p, err := New(testConfig(t, originAddr, ""), slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/__origin/echo")
	func() {
		defer p.recoverPanic(&ctx)
		panic("boom")
	}()
	if ctx.Response.StatusCode() != 500 || !strings.Contains(string(ctx.Response.Body()), `"code":"internal"`) {
		t.Errorf("after a panic: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if l := logs.lines(); len(l) != 1 || l[0]["panic"] != "boom" || !strings.Contains(l[0]["stack"].(string), "TestPanicIsA500") {
		t.Errorf("log: %v", l)
	}
}

// TestFetchPanicIsA500: a panic in a fetch, which runs on the flight's
// goroutine where the handler's recover cannot reach, is a failed fetch
// answered 500 and a logged stack, not the end of the process.
func TestFetchPanicIsA500(t *testing.T) {
	var logs syncBuffer
	_, originAddr := startOrigin(t)
	p, err := New(testConfig(t, originAddr, ""), slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	f := p.fetchSafely(func() *fetched { panic("boom") })
	var ctx fasthttp.RequestCtx
	fail(&ctx, f.err)
	if ctx.Response.StatusCode() != 500 || !strings.Contains(string(ctx.Response.Body()), `"code":"internal"`) {
		t.Errorf("after a fetch's panic: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if l := logs.lines(); len(l) != 1 || l[0]["panic"] != "boom" {
		t.Errorf("log: %v", l)
	}
}
