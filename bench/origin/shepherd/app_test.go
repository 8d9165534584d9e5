package shepherd

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// elapsed times one request through the Handler.
func elapsed(t *testing.T, app *App, path string) time.Duration {
	t.Helper()
	start := time.Now()
	call(t, app, "GET", path, "")
	return time.Since(start)
}

func TestLatency(t *testing.T) {
	const d = 150 * time.Millisecond // long enough that a slow machine does not blur fast and slow
	app := New(Config{RouteLatency: map[string]time.Duration{"products": d, "no.such.route": time.Hour}})
	products, profile := vultr+"/postgres/products?limit=1", vultr+"/postgres/users/user_1/profile"
	if got := elapsed(t, app, products); got < d {
		t.Errorf("Config.RouteLatency: products took %v, want at least %v", got, d)
	}
	if got := elapsed(t, app, profile); got >= d {
		t.Errorf("profile took %v with no latency set", got)
	}
	app.SetLatency("*", d)
	if got := elapsed(t, app, profile); got < d {
		t.Errorf("default latency: profile took %v", got)
	}
	if got := elapsed(t, app, "/nowhere"); got < d {
		t.Errorf("default latency: a 404 took %v", got)
	}
	app.SetLatency("profile.get", 0)
	if got := elapsed(t, app, profile); got >= d {
		t.Errorf("route latency 0 over a default: profile took %v", got)
	}
	app.SetLatency("profile.get", -1)
	if got := elapsed(t, app, profile); got < d {
		t.Errorf("negative route latency returns to the default: took %v", got)
	}
	if got := New(Config{Latency: d}); elapsed(t, got, profile) < d {
		t.Errorf("Config.Latency not applied")
	}
	// The health routes report the simulated latency.
	health := data(t, call(t, app, "GET", vultr+"/postgres/health", "")).(map[string]any)
	if health["latency"] != 150.0 {
		t.Errorf("postgres health latency = %v, want 150", health["latency"])
	}
}

func TestTestAids(t *testing.T) {
	app := New(Config{})
	aid := func(method, uri string) (int, map[string]any) {
		resp := call(t, app, method, uri, "")
		var v map[string]any
		json.Unmarshal(resp.Body(), &v)
		return resp.StatusCode(), v
	}
	call(t, app, "GET", vultr+"/postgres/products", "")
	call(t, app, "GET", vultr+"/postgres/products", "")
	call(t, app, "GET", "/nowhere", "")

	code, v := aid("GET", "/__origin/stats")
	routes, _ := v["routes"].(map[string]any)
	if code != 200 || v["total"] != 3.0 || routes["products"] != 2.0 || routes["notfound"] != 1.0 {
		t.Fatalf("stats: %d %v", code, v)
	}
	if len(routes) != len(app.Routes()) {
		t.Errorf("stats lists %d routes, Routes() %d", len(routes), len(app.Routes()))
	}
	if s := app.Stats(); s.Total != 3 {
		t.Errorf("reading stats was counted: %+v", s.Total)
	}

	cases := []struct {
		name, method, uri string
		status            int
	}{
		{"set latency", "POST", "/__origin/latency?route=products&ms=40", 200},
		{"set default", "POST", "/__origin/latency?route=*&ms=0", 200},
		{"unknown route", "POST", "/__origin/latency?route=nope&ms=1", 404},
		{"bad ms", "POST", "/__origin/latency?route=products&ms=fast", 400},
		{"negative default", "POST", "/__origin/latency?route=*&ms=-1", 400},
		{"latency by GET", "GET", "/__origin/latency?route=products&ms=1", 405},
		{"stats by POST", "POST", "/__origin/stats", 405},
		{"unknown aid", "GET", "/__origin/nothing", 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if code, v := aid(tc.method, tc.uri); code != tc.status {
				t.Errorf("%s %s = %d %v, want %d", tc.method, tc.uri, code, v, tc.status)
			}
		})
	}
	if got := elapsed(t, app, vultr+"/postgres/products?limit=1"); got < 40*time.Millisecond {
		t.Errorf("latency set through the aid: products took %v", got)
	}
	if code, _ := aid("POST", "/__origin/reset"); code != 200 {
		t.Fatalf("reset: %d", code)
	}
	if s := app.Stats(); s.Total != 0 || s.Routes["products"] != 0 {
		t.Errorf("after reset: %+v", s)
	}
}

func TestRoutes(t *testing.T) {
	names := New(Config{}).Routes()
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("Routes() not sorted and unique: %v", names)
	}
	for _, want := range []string{"products", "profile.get", "profile.post", "orders.create", "memory.search", "cache.set", "echo", "notfound", "preflight"} {
		if !slices.Contains(names, want) {
			t.Errorf("Routes() lacks %q", want)
		}
	}
}

// goroutines waits for the count to fall to at most want, and returns the
// last count (with the stacks, when it stays above).
func goroutines(want int) (int, string) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			if n > want {
				buf := make([]byte, 1<<20)
				return n, string(buf[:runtime.Stack(buf, true)])
			}
			return n, ""
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStartClose serves over real TCP on 127.0.0.1, and checks that Close
// stops everything Start began: no goroutine is left behind.
func TestStartClose(t *testing.T) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(addr, path string) (int, string) {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// fasthttp starts one process-wide clock goroutine on first use; let a
	// first app start it, so the count below is what an App owns.
	before := runtime.NumGoroutine()
	warm := New(Config{})
	addr, err := warm.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	get(addr, "/")
	warm.Close()
	client.CloseIdleConnections()
	baseline, _ := goroutines(before + 1)

	app := New(Config{})
	addr, err = app.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("bound address %q", addr)
	}
	if code, body := get(addr, vultr+"/postgres/products?limit=2"); code != 200 || !strings.Contains(body, `"success":true`) {
		t.Fatalf("over TCP: %d %s", code, body)
	}
	// A keep-alive connection left open must not hold Close up.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	idle.Read(make([]byte, 4096))

	done := make(chan error, 1)
	go func() { done <- app.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := app.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Errorf("still accepting after Close")
	}
	if _, err := app.Start("127.0.0.1:0"); err == nil {
		t.Errorf("Start after Close succeeded")
	}
	// The client still holds its keep-alive connection open: the server's
	// side of it must be gone all the same.
	client.CloseIdleConnections()
	if n, stacks := goroutines(baseline); n > baseline {
		t.Errorf("%d goroutines after Close, %d before Start:\n%s", n, baseline, stacks)
	}
}

// TestCloseCutsLatency checks that Close does not wait out a long
// simulated latency of a request in flight, and that the request still
// gets its answer.
func TestCloseCutsLatency(t *testing.T) {
	app := New(Config{Latency: time.Hour})
	addr, err := app.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	deadline := time.Now().Add(3 * time.Second)
	for app.Stats().Total == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Close took %v with an hour of latency in flight", took)
	}
	if code := <-answered; code != 200 {
		t.Errorf("the request in flight got %d, want its 200", code)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestServeAfterClose(t *testing.T) {
	app := New(Config{})
	app.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Serve(ln); err == nil {
		t.Errorf("Serve after Close returned nil")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Errorf("Serve after Close left its listener open")
	}
}
