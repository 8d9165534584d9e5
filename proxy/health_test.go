package proxy

import (
	"fmt"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// waitHealth polls /health every 100 ms until ok(h) holds or limit has
// passed, and returns how long it took and the last answer.
func waitHealth(t *testing.T, admin string, limit time.Duration, ok func(Health) bool) (time.Duration, Health, bool) {
	t.Helper()
	start := time.Now()
	for {
		var h Health
		getJSON(t, admin, "/health", &h)
		took := time.Since(start)
		if ok(h) {
			return took, h, true
		}
		if took > limit {
			return took, h, false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestHealthL2Bounds: with no client traffic, /health notices Valkey gone
// within 2 s and back within 2 s, and keeps the outage's error and its
// time after the recovery. (TestValkeyOutage checks the same states under
// load, with coarse sleeps; this measures the bounds.)
func TestHealthL2Bounds(t *testing.T) {
	redis := servicetest.StartRedisServer(t)
	_, originAddr := startOrigin(t)
	_, _, admin := startProxy(t, cacheConfig(t, originAddr, l2Block(redis.Addr, servicetest.KeyPrefix(t))))
	const bound = 2 * time.Second

	if _, h, ok := waitHealth(t, admin, bound, func(h Health) bool { return h.Status == stateOK }); !ok {
		t.Fatalf("before the outage: %+v", h)
	}
	redis.Stop()
	stopped := time.Now()
	took, down, ok := waitHealth(t, admin, 3*bound, func(h Health) bool {
		return h.Status == stateDegraded && h.Dependencies["l2"].State == stateDegraded
	})
	if !ok || took > bound {
		t.Errorf("degraded %v after Valkey stopped (seen: %v); want within %v: %+v", took, ok, bound, down)
	}
	l2 := down.Dependencies["l2"]
	if l2.Error == "" || l2.ErrorAt.IsZero() || l2.ErrorAt.Before(stopped.Add(-time.Second)) {
		t.Errorf("l2 during the outage %+v: want its error and when", l2)
	}
	// Long enough for the breaker to have a say.
	time.Sleep(1500 * time.Millisecond)

	redis.Start()
	back, up, ok := waitHealth(t, admin, 3*bound, func(h Health) bool {
		return h.Status == stateOK && h.Dependencies["l2"].State == stateOK
	})
	if !ok || back > bound {
		t.Errorf("ok %v after Valkey returned (seen: %v); want within %v: %+v", back, ok, bound, up)
	}
	if got := up.Dependencies["l2"]; got.Error != l2.Error || !got.ErrorAt.Equal(l2.ErrorAt) {
		t.Errorf("l2 after the recovery %+v: want the outage's error %q at %v kept", got, l2.Error, l2.ErrorAt)
	}
	t.Logf("Valkey stopped: degraded after %.2fs; restarted: ok after %.2fs (bound %v); l2 error kept: %q at %s",
		took.Seconds(), back.Seconds(), bound, up.Dependencies["l2"].Error, up.Dependencies["l2"].ErrorAt.Format(time.RFC3339Nano))
}

// sinkConfig is an upstream with one http sink route and a pass route.
func sinkConfig(t *testing.T, upstream string) *configs.Config {
	t.Helper()
	cfg, err := configs.Parse("sink-test.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s, health_path: /api/vultr/health}
routes:
  - name: store-memory
    match: {method: POST, path: /api/raindrop/store-memory}
    batch: {sink: http, url: /api/raindrop/batch-store-memory, wrap: memories, split: results}
  - name: misconfigured
    match: {method: POST, path: /api/raindrop/other}
    batch: {sink: http, url: /api/raindrop/no-such-batch}
  - name: everything-else
    match: {path_prefix: /api/}
    pass: {}
`, upstream)))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// TestHealthSinks: every http sink's endpoint is a dependency of its own,
// probed with OPTIONS: ok when it answers, degraded when there is no such
// endpoint (an app without a CORS layer answers 404) and the route's
// writes would fail. Against a closed port the upstream and both sinks
// are down, and /health is 503 (TestHealthDown checks the upstream alone).
func TestHealthSinks(t *testing.T) {
	_, originAddr := startRecordingOrigin(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/api/raindrop/no-such-batch" {
			ctx.SetStatusCode(fasthttp.StatusNotFound)
		}
	})
	_, _, admin := startProxy(t, sinkConfig(t, originAddr))
	var h Health
	if status := getJSON(t, admin, "/health", &h); status != 200 || h.Status != stateDegraded {
		t.Fatalf("health %d %+v, want 200 degraded", status, h)
	}
	if d, ok := h.Dependencies["sink:store-memory"]; !ok || d.State != stateOK || d.LatencyMS <= 0 || d.Error != "" {
		t.Errorf("sink:store-memory = %+v (present %v); want ok with a latency", d, ok)
	}
	if d := h.Dependencies["sink:misconfigured"]; d.State != stateDegraded || d.Error == "" || d.ErrorAt.IsZero() {
		t.Errorf("sink:misconfigured = %+v; want degraded with its error and when", d)
	}

	closed := servicetest.FreeAddr(t)
	_, _, admin = startProxy(t, sinkConfig(t, closed))
	h = Health{}
	if status := getJSON(t, admin, "/health", &h); status != 503 || h.Status != stateDown {
		t.Fatalf("health %d %+v, want 503 down", status, h)
	}
	for _, name := range []string{"upstream", "sink:store-memory", "sink:misconfigured"} {
		if d := h.Dependencies[name]; d.State != stateDown || d.Error == "" || d.ErrorAt.IsZero() {
			t.Errorf("%s = %+v; want down with its error and when", name, d)
		}
	}
}

func TestErrMemory(t *testing.T) {
	var m errMemory
	ok := Dependency{State: stateOK, LatencyMS: 1}
	if d := m.note(ok); d.Error != "" || !d.ErrorAt.IsZero() {
		t.Fatalf("never failed: %+v", d)
	}
	first := m.note(Dependency{State: stateDown, Error: "refused"})
	if first.Error != "refused" || first.ErrorAt.IsZero() {
		t.Fatalf("failing: %+v", first)
	}
	steps := []struct {
		name    string
		in      Dependency
		msg     string
		sameAt  bool // ErrorAt stays the previous note's
		stateIs string
	}{
		{"the same failure goes on", Dependency{State: stateDown, Error: "refused"}, "refused", true, stateDown},
		{"recovered: kept", ok, "refused", true, stateOK},
		{"fails again the same way: a new failure", Dependency{State: stateDown, Error: "refused"}, "refused", false, stateDown},
		{"another message: a new failure", Dependency{State: stateDegraded, Error: "503"}, "503", false, stateDegraded},
	}
	prev := first
	for _, s := range steps {
		time.Sleep(time.Millisecond) // distinct times
		d := m.note(s.in)
		if d.Error != s.msg || d.State != s.stateIs || d.ErrorAt.Equal(prev.ErrorAt) != s.sameAt {
			t.Errorf("%s: %+v after %+v", s.name, d, prev)
		}
		prev = d
	}
}

// TestHealthWithFullPool: the upstream probe has connections of its own,
// so a pool that requests fill (max_conns 1, held by a slow answer) is
// not read as the app down.
func TestHealthWithFullPool(t *testing.T) {
	_, originAddr := startRecordingOrigin(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/api/slow" {
			time.Sleep(3 * time.Second)
		}
	})
	cfg, err := configs.Parse("full-pool.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 5s, max_conns: 1, health_path: /api/vultr/health}
routes:
  - {name: all, match: {path_prefix: /api/}, pass: {}}
`, originAddr)))
	if err != nil {
		t.Fatal(err)
	}
	_, addr, admin := startProxy(t, cfg)
	go func() { fasthttp.ReleaseResponse(get(t, rawClient(addr), "GET", "/api/slow")) }()
	time.Sleep(200 * time.Millisecond) // the one connection is busy
	var h Health
	if status := getJSON(t, admin, "/health", &h); status != 200 || h.Dependencies["upstream"].State != stateOK {
		t.Errorf("/health with the pool full: %d %+v; want the app ok", status, h.Dependencies["upstream"])
	}
}
