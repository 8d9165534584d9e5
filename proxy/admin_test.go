package proxy

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

func getJSON(t *testing.T, addr, path string, v any) int {
	t.Helper()
	resp := exchange{method: "GET", uri: path}.do(t, rawClient(addr))
	defer fasthttp.ReleaseResponse(resp)
	if err := json.Unmarshal(resp.Body(), v); err != nil {
		t.Fatalf("%s: %q is not JSON: %v", path, resp.Body(), err)
	}
	return resp.StatusCode()
}

func TestHealth(t *testing.T) {
	var probes atomic.Int64
	_, originAddr := startRecordingOrigin(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/api/vultr/health" {
			probes.Add(1)
		}
	})
	_, _, admin := startProxy(t, testConfig(t, originAddr, ""))

	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h Health
			if status := getJSON(t, admin, "/health", &h); status != 200 || h.Status != "ok" {
				t.Errorf("health %d %+v", status, h)
			}
			if up := h.Dependencies["upstream"]; up.State != "ok" || up.LatencyMS <= 0 {
				t.Errorf("upstream %+v", up)
			}
		}()
	}
	wg.Wait()
	// 50 askers inside one second share one probe (two if the test
	// straddled a second boundary).
	if n := probes.Load(); n < 1 || n > 2 {
		t.Errorf("upstream probed %d times for 50 health checks; want 1", n)
	}
}

func TestHealthDown(t *testing.T) {
	closed := servicetest.FreeAddr(t)
	_, _, admin := startProxy(t, testConfig(t, closed, ""))
	var h Health
	if status := getJSON(t, admin, "/health", &h); status != 503 || h.Status != "down" {
		t.Errorf("health %d %+v, want 503 down", status, h)
	}
	if up := h.Dependencies["upstream"]; up.State != "down" || up.Error == "" {
		t.Errorf("upstream %+v, want down with an error", up)
	}
}

func TestStats(t *testing.T) {
	_, originAddr := startOrigin(t)
	_, addr, admin := startProxy(t, testConfig(t, originAddr, ""))
	c := rawClient(addr)
	for _, uri := range []string{"/api/vultr/postgres/users/user_1/profile", "/api/vultr/postgres/users/nobody/profile",
		"/__origin/echo", "/__origin/echo?status=500", "/__origin/echo?status=301", "/nowhere"} {
		fasthttp.ReleaseResponse(exchange{method: "GET", uri: uri}.do(t, c))
	}
	var s Stats
	if status := getJSON(t, admin, "/stats", &s); status != 200 {
		t.Fatalf("stats status %d", status)
	}
	byName := map[string]RouteEntry{}
	for _, r := range s.Routes {
		byName[r.Name] = r
	}
	want := map[string]map[string]uint64{
		"profile": {"2xx": 1, "4xx": 1},
		"echo":    {"2xx": 1, "3xx": 1, "5xx": 1},
	}
	for name, classes := range want {
		r := byName[name]
		var total uint64
		for class, n := range classes {
			total += n
			if r.Statuses[class] != n {
				t.Errorf("%s %s = %d, want %d", name, class, r.Statuses[class], n)
			}
		}
		if r.Requests != total {
			t.Errorf("%s requests = %d, want %d", name, r.Requests, total)
		}
	}
	if s.Unrouted.Statuses["4xx"] != 1 {
		t.Errorf("unrouted %+v, want one 4xx", s.Unrouted)
	}
}
