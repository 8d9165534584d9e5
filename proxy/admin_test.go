package proxy

import (
	"bufio"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// TestPurgeErrorIsJSON: a purge naming a URL no cache route takes,
// with a control character in it (valid JSON in the request), is a 400
// whose body must be JSON {"error":{"code","message"}}.
func TestPurgeErrorIsJSON(t *testing.T) {
	_, originAddr := startOrigin(t)
	cfg := cacheConfig(t, originAddr, "")
	cfg.Admin.Token = "s3cret"
	_, _, admin := startProxy(t, cfg)
	ac := rawClient(admin)
	for _, body := range []string{
		`{"url":"/nowhere\u0007"}`,
		`{"url":"/nowhere\u0000x"}`,
		`{"url":"/nowhere\u007f"}`,
		`{"url":"/api/vultr/postgres/products","method":"PUT\u000b"}`,
	} {
		resp := get(t, ac, "POST", "/purge", "Authorization", "Bearer s3cret", "body", body)
		var v struct {
			Error struct{ Code, Message string }
		}
		err := json.Unmarshal(resp.Body(), &v)
		if resp.StatusCode() != 400 || err != nil || v.Error.Code == "" {
			t.Errorf("purge %s: %d %q (content-type %s): not a 400 with a JSON body: %v",
				body, resp.StatusCode(), resp.Body(), resp.Header.ContentType(), err)
		}
		fasthttp.ReleaseResponse(resp)
	}
}

// TestAdminUnreadableRequestIsJSON: a request the admin server cannot read
// (a body over fasthttp's default 4 MB, headers over its 4 KB buffer, a
// malformed request line) is answered 4xx with Sheepdog's JSON error shape,
// as the client listener answers them.
func TestAdminUnreadableRequestIsJSON(t *testing.T) {
	_, originAddr := startOrigin(t)
	cfg := cacheConfig(t, originAddr, "")
	cfg.Admin.Token = "s3cret"
	_, _, admin := startProxy(t, cfg)
	cases := []struct{ name, raw string }{
		{"5 MB purge body announced", "POST /purge HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json\r\nContent-Length: 5242880\r\n\r\n"},
		{"8 KB header", "GET /health HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("y", 8<<10) + "\r\n\r\n"},
		{"malformed request line", "GET /health HTTP/1.1 extra\r\nHost: a\r\nContent-Length: x\r\n\r\n"},
	}
	for _, c := range cases {
		conn, err := net.Dial("tcp", admin)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(c.raw)); err != nil {
			t.Fatal(err)
		}
		var resp fasthttp.Response
		err = resp.Read(bufio.NewReader(conn))
		conn.Close()
		if err != nil {
			t.Errorf("%s: reading the answer: %v", c.name, err)
			continue
		}
		var v struct {
			Error struct{ Code, Message string }
		}
		jerr := json.Unmarshal(resp.Body(), &v)
		if resp.StatusCode() < 400 || resp.StatusCode() >= 500 || jerr != nil || v.Error.Code == "" {
			t.Errorf("%s: %d %q (content-type %q): want a 4xx with a JSON error body",
				c.name, resp.StatusCode(), resp.Body(), resp.Header.ContentType())
		}
	}
}

// TestPurgeURLMethodNeverCached: on a cache route without
// match.method (echo), only GET and HEAD are read from the cache. A purge
// by URL naming POST purges an entry that can never exist, and must not
// answer {"purged":true} while the GET entry stays.
func TestPurgeURLMethodNeverCached(t *testing.T) {
	_, originAddr := startOrigin(t)
	cfg := cacheConfig(t, originAddr, "")
	cfg.Admin.Token = "s3cret"
	_, addr, admin := startProxy(t, cfg)
	c, ac := rawClient(addr), rawClient(admin)
	const uri = "/__origin/echo?v=purge-method"
	xcache := func() string {
		resp := get(t, c, "GET", uri)
		defer fasthttp.ReleaseResponse(resp)
		return string(resp.Header.Peek("X-Cache"))
	}
	xcache()
	if x := xcache(); x != "HIT" {
		t.Fatalf("warm: %s", x)
	}
	resp := get(t, ac, "POST", "/purge", "Authorization", "Bearer s3cret", "body", `{"url":"`+uri+`","method":"POST"}`)
	status, body := resp.StatusCode(), string(resp.Body())
	fasthttp.ReleaseResponse(resp)
	if x := xcache(); status == 200 && x == "HIT" {
		t.Errorf("purge with method POST answered %d %s, yet the entry is still served (X-Cache %s): want a 400 as for any URL no cached entry can have", status, body, x)
	}
}

// TestAdminReadOnlyMethods: GET-only endpoints answer other methods 405,
// as the status page, /purge and /reload do.
func TestAdminReadOnlyMethods(t *testing.T) {
	_, originAddr := startOrigin(t)
	_, _, admin := startProxy(t, cacheConfig(t, originAddr, ""))
	ac := rawClient(admin)
	for _, path := range []string{"/", "/health", "/stats", "/metrics"} {
		for _, m := range []string{"POST", "DELETE"} {
			resp := get(t, ac, m, path)
			if resp.StatusCode() != 405 || string(resp.Header.Peek("Allow")) != "GET, HEAD" {
				t.Errorf("%s %s: %d, Allow %q; want 405, Allow GET, HEAD", m, path, resp.StatusCode(), resp.Header.Peek("Allow"))
			}
			fasthttp.ReleaseResponse(resp)
		}
	}
}
