package proxy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

func TestErrorRing(t *testing.T) {
	var r errorRing
	ctx := &fasthttp.RequestCtx{}
	for i := range recentCap + 5 {
		ctx.Request.Header.SetMethod("GET")
		ctx.Request.SetRequestURI(fmt.Sprintf("/p/%d?token=secret", i))
		r.record(ctx, 500+i%4, "code", fmt.Sprint("message ", i))
	}
	long := "/" + strings.Repeat("x", 3*recentPathMax)
	ctx.Request.SetRequestURI(long)
	r.record(ctx, 404, codeNoRoute, "long")
	got := r.snapshot()
	if len(got) != recentCap {
		t.Fatalf("%d entries, want %d", len(got), recentCap)
	}
	if got[0].Message != "long" || len(got[0].Path) != recentPathMax {
		t.Errorf("newest %+v: want the long path cut to %d bytes", got[0], recentPathMax)
	}
	for i, e := range got[1:] {
		n := recentCap + 4 - i
		if want := fmt.Sprint("/p/", n); e.Path != want || e.Message != fmt.Sprint("message ", n) || e.Status != 500+n%4 {
			t.Errorf("entry %d = %+v; want path %s, newest first", i+1, e, want)
		}
	}
}

// chromium finds the browser, or skips (fails when services are required,
// as servicetest does for Valkey and PostgreSQL).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	msg := "chromium is not installed (apt-get install -y chromium); .ci/run installs it"
	if os.Getenv("SHEEPDOG_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// runChromium runs headless Chromium on url with extra flags and returns
// its standard output.
func runChromium(t *testing.T, bin, url string, extra ...string) string {
	t.Helper()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=5000"}
	args = append(append(args, extra...), url)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", extra, err, stderr.String())
	}
	return string(out)
}

// statusPageConfig has every kind of dependency: Valkey as L2, an http
// sink, a postgres sink in the test's own table, and a valkey sink.
func statusPageConfig(t *testing.T, origin, redisAddr, prefix, dsn, table string) *configs.Config {
	t.Helper()
	cfg, err := configs.Parse("statuspage-test.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s, health_path: /api/vultr/health}
cache: {l2: {addrs: ["%s"], key_prefix: "%s", timeout: 200ms}}
postgres: {dsn: "%s"}
routes:
  - name: products
    match: {method: GET, path: /api/vultr/postgres/products}
    cache: {ttl: 60s, key: {query: [category, limit]}, tags: [products]}
  - name: store-memory
    match: {method: POST, path: /api/raindrop/store-memory}
    batch: {sink: http, url: /api/raindrop/batch-store-memory, wrap: memories, split: results, max_wait: 20ms}
  - name: create-order
    match: {method: POST, path: /api/vultr/postgres/orders}
    batch:
      sink: postgres
      table: %s
      columns: {order_id: "{id:order_}", user_id: "{body.user_id}", items: "{body.items}",
                total_amount: "{body.total_amount}", status: "{body.status=pending}"}
      returning: {orderId: order_id}
      max_wait: 20ms
  - name: everything-else
    match: {path_prefix: /api/}
    pass: {}
`, origin, redisAddr, prefix, dsn, table)))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// TestStatusPage renders the admin status page in headless Chromium after
// a little traffic of every kind, checks the DOM it drew from /health and
// /stats, and saves a screenshot (in $SHEEPDOG_ARTIFACTS if set).
func TestStatusPage(t *testing.T) {
	bin := chromium(t)
	redisAddr, prefix := servicetest.RedisAddr(t), servicetest.KeyPrefix(t)
	dsn := servicetest.PostgresDSN(t)
	_, table := testOrdersTable(t)
	app, originAddr := startOrigin(t)
	app.SetLatency("products", 200*time.Millisecond)
	p, addr, admin := startProxy(t, statusPageConfig(t, originAddr, redisAddr, prefix, dsn, table))
	c := rawClient(addr)
	c.MaxConns = 100

	// A herd on one cold key: one fetch, the others coalesced; then hits.
	const herd = 40
	const products = "/api/vultr/postgres/products?category=tops&limit=3"
	burst(herd, func(int) { fasthttp.ReleaseResponse(get(t, c, "GET", products)) })
	for range 9 {
		fasthttp.ReleaseResponse(get(t, c, "GET", products))
	}
	// Writes in batches, through both sinks.
	burst(30, func(i int) {
		resp := get(t, c, "POST", "/api/raindrop/store-memory", "Content-Type", "application/json",
			"body", fmt.Sprintf(`{"userId":"page_user","text":"note %d"}`, i))
		if resp.StatusCode() != 200 {
			t.Errorf("store-memory: %d %s", resp.StatusCode(), resp.Body())
		}
		fasthttp.ReleaseResponse(resp)
	})
	burst(10, func(int) {
		resp := get(t, c, "POST", "/api/vultr/postgres/orders", "Content-Type", "application/json",
			"body", `{"user_id":"user_1","items":[{"product_id":"p1","quantity":1,"price":9.5,"size":"M"}],"total_amount":9.5}`)
		if resp.StatusCode() != 200 {
			t.Errorf("order: %d %s", resp.StatusCode(), resp.Body())
		}
		fasthttp.ReleaseResponse(resp)
	})
	// One error, on a path that would be markup if the page parsed it.
	const evil = "/nowhere/<b>bold</b>"
	if resp := get(t, c, "GET", evil); resp.StatusCode() != 404 {
		t.Fatalf("%s: %d, want 404", evil, resp.StatusCode())
	}
	p.cache.WaitForTest()

	var s Stats
	getJSON(t, admin, "/stats", &s)
	if s.Saved.Coalesced == 0 || s.Saved.Hits < 9 {
		t.Fatalf("saved %+v: want coalesced answers and 9 hits", s.Saved)
	}

	url := "http://" + admin + "/"
	dom := runChromium(t, bin, url, "--dump-dom")
	if !strings.Contains(dom, `data-refreshed="true"`) {
		t.Fatalf("the page never drew /health and /stats:\n%s", dom)
	}
	for _, dep := range []string{"upstream", "l2", "postgres", "sink:store-memory"} {
		re := regexp.MustCompile(`data-dep="` + regexp.QuoteMeta(dep) + `" data-state="ok"`)
		if !re.MatchString(dom) {
			t.Errorf("no ok card for %s", dep)
		}
	}
	routes := map[string]RouteEntry{}
	for _, r := range s.Routes {
		routes[r.Name] = r
	}
	products0 := routes["products"]
	batchRow := func(name string) string {
		b := routes[name].Batch
		return fmt.Sprintf(`<tr data-route="%s"><td>%s</td><td class="num" data-col="mean-batch">%.2f</td>`+
			`<td class="num" data-col="items">%d</td><td class="num" data-col="batches">%d</td>`,
			name, name, b.MeanBatch, b.Items, b.Batches)
	}
	// The page's figures are its own later reading of /stats: the same,
	// as nothing ran in between.
	checks := map[string]string{
		"overall state":      `id="overall" class="badge ok" data-state="ok"`,
		"hit ratio":          fmt.Sprintf(`<tr data-route="products"><td>products</td><td class="num" data-col="hit-ratio">%.1f%%</td>`, *products0.HitRatio*100),
		"coalesced figure":   fmt.Sprintf(`<div class="figure" data-figure="upstream-saved"><div class="value">%d</div>`, s.Saved.UpstreamRequests),
		"store-memory batch": batchRow("store-memory"),
		"create-order batch": batchRow("create-order"),
		"error route":        `<td>(none)</td><td class="msg">GET /nowhere/&lt;b&gt;bold&lt;/b&gt;</td><td class="num" data-col="status">404</td><td data-col="code">no_route</td>`,
		"error escape":       `&lt;b&gt;bold&lt;/b&gt;`,
	}
	for what, want := range checks {
		if !strings.Contains(dom, want) {
			t.Errorf("the DOM has no %s: %s", what, want)
		}
	}
	if strings.Contains(dom, "<b>bold</b>") {
		t.Error("the error's path was rendered as markup")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	dir := os.Getenv("SHEEPDOG_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "statuspage.png")
	runChromium(t, bin, url, "--screenshot="+shot, "--window-size=1280,1600")
	if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
	t.Logf("status page screenshot: %s; stats saved %+v, products hit ratio %.3f", shot, s.Saved, *products0.HitRatio)
}
