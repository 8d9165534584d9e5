package shepherd

import (
	"strconv"
	"testing"
	"time"
)

func TestRateLimit(t *testing.T) {
	c := &clock{now: fixedNow}
	app := New(Config{Now: c.Now, RateLimit: true})
	reset := strconv.FormatInt(fixedNow.Add(15*time.Minute).Unix()+1, 10) // ceil of .890 s
	for i := 1; i <= 100; i++ {
		resp := call(t, app, "GET", vultr+"/postgres/products?limit=1", "")
		if resp.StatusCode() != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode())
		}
		if got, want := header(resp, "X-RateLimit-Remaining"), strconv.Itoa(100-i); got != want {
			t.Fatalf("request %d: remaining %q, want %q", i, got, want)
		}
		if header(resp, "X-RateLimit-Limit") != "100" || header(resp, "X-RateLimit-Reset") != reset {
			t.Fatalf("request %d: limit %q reset %q, want 100 and %s", i, header(resp, "X-RateLimit-Limit"), header(resp, "X-RateLimit-Reset"), reset)
		}
	}
	c.advance(14 * time.Minute)
	cases := []struct {
		name, method, path string
		status             int
	}{
		{"101st on /api", "GET", vultr + "/postgres/products", 429},
		{"unknown /api route also limited", "GET", "/api/nothing", 429},
		{"upper-case path also limited", "GET", "/API/vultr/stats", 429},
		{"outside /api not limited", "GET", "/health", 200},
		{"preflight not limited", "OPTIONS", vultr + "/stats", 204},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := call(t, app, tc.method, tc.path, "")
			if resp.StatusCode() != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode(), tc.status)
			}
			if tc.status != 429 {
				return
			}
			if string(resp.Body()) != rateLimitMessage || string(resp.Header.ContentType()) != "text/html; charset=utf-8" {
				t.Errorf("429 body %q type %q", resp.Body(), resp.Header.ContentType())
			}
			if got := header(resp, "Retry-After"); got != "60" {
				t.Errorf("Retry-After = %q, want 60", got)
			}
			if got := header(resp, "X-RateLimit-Remaining"); got != "0" {
				t.Errorf("remaining = %q", got)
			}
		})
	}
	if n := app.Stats().Routes["products"]; n != 101 {
		t.Errorf("limited request not counted: products %d", n)
	}
	c.advance(time.Minute)
	if resp := call(t, app, "GET", vultr+"/postgres/products?limit=1", ""); resp.StatusCode() != 200 || header(resp, "X-RateLimit-Remaining") != "99" {
		t.Errorf("after the window: %d, remaining %q", resp.StatusCode(), header(resp, "X-RateLimit-Remaining"))
	}
	if resp := call(t, New(Config{}), "GET", vultr+"/stats", ""); header(resp, "X-RateLimit-Limit") != "" {
		t.Errorf("limiter headers with RateLimit off")
	}
}
