package compare

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

func TestConfigsNameTheirSetup(t *testing.T) {
	setup := Setup{Dir: t.TempDir(), Listen: "127.0.0.1:18555", Origin: "127.0.0.1:18556"}
	tests := []struct {
		cache string
		file  string
		want  []string
	}{
		{"nginx", "nginx.conf", []string{
			"listen 127.0.0.1:18555 ", "server 127.0.0.1:18556;", "proxy_cache_lock on;",
			"proxy_cache_valid 200 30s;", "proxy_cache_path " + setup.Dir + "/cache ",
			`proxy_cache_key "$uri?category=$arg_category&brand=$arg_brand`}},
		{"varnish", "default.vcl", []string{
			`.host = "127.0.0.1";`, `.port = "18556";`, "set beresp.ttl = 60s;"}},
	}
	for _, tt := range tests {
		t.Run(tt.cache, func(t *testing.T) {
			c, ok := Lookup(tt.cache)
			if !ok {
				t.Fatalf("Lookup(%q) found nothing", tt.cache)
			}
			if !strings.HasPrefix(c.Caveat, tt.cache+": ") {
				t.Errorf("caveat %q does not name %s", c.Caveat, tt.cache)
			}
			cmd, err := c.command("/usr/sbin/"+c.Binary, setup)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(setup.Dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("%s lacks %q", tt.file, w)
				}
			}
			if strings.Contains(string(b), "{{") {
				t.Errorf("%s has a template action left", tt.file)
			}
			if !strings.Contains(strings.Join(cmd.Args, " "), setup.Dir) || !strings.HasPrefix(cmd.Log, setup.Dir) {
				t.Errorf("command %v, log %s: want every path under %s", cmd.Args, cmd.Log, setup.Dir)
			}
		})
	}
	if _, ok := Lookup("squid"); ok {
		t.Error("Lookup(squid) found a cache")
	}
}

// get sends one request and returns the answer's status and cache header.
func get(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Cache-Status") + resp.Header.Get("X-Cache")
}

// TestCachesInFrontOfTheOrigin runs each cache that is installed in front
// of the simulated app. Where one is not installed (CI machines have
// neither), the bench reports its row missing, and this test says so.
func TestCachesInFrontOfTheOrigin(t *testing.T) {
	const products = "/api/vultr/postgres/products?category=tops&limit=5"
	const search = `{"userId":"user_1","q":"linen","topK":5}`
	tests := []struct {
		cache string
		// upstream is how many requests reach the app for: the same
		// products query twice (the second with an id the app ignores),
		// then the same search twice.
		productsUpstream, searchUpstream uint64
	}{
		{"nginx", 1, 1},
		{"varnish", 1, 2}, // core VCL cannot key on a body: POST passes
	}
	for _, tt := range tests {
		t.Run(tt.cache, func(t *testing.T) {
			c, _ := Lookup(tt.cache)
			bin, ok := c.Installed()
			if !ok {
				t.Logf("%s is not installed: only its config was checked", c.Binary)
				return
			}
			app := shepherd.New(shepherd.Config{})
			origin, err := app.Start("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close()
			listen := servicetest.FreeAddr(t)
			p, err := c.Start(context.Background(), bin, Setup{Dir: t.TempDir(), Listen: listen, Origin: origin})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Stop(2 * time.Second)

			base := "http://" + listen
			if status, cache := get(t, "GET", base+products, ""); status != 200 || !strings.Contains(cache, "MISS") {
				t.Errorf("first GET: %d %q, want 200 and a miss", status, cache)
			}
			if status, cache := get(t, "GET", base+products+"&id=prod_7", ""); status != 200 || !strings.Contains(cache, "HIT") {
				t.Errorf("second GET: %d %q, want 200 and a hit", status, cache)
			}
			if got := app.Stats().Routes["products"]; got != tt.productsUpstream {
				t.Errorf("products reached the app %d times, want %d", got, tt.productsUpstream)
			}
			for range 2 {
				if status, _ := get(t, "POST", base+"/api/raindrop/search-memory", search); status != 200 {
					t.Errorf("search: %d", status)
				}
			}
			if got := app.Stats().Routes["memory.search"]; got != tt.searchUpstream {
				t.Errorf("search reached the app %d times, want %d", got, tt.searchUpstream)
			}
			pid := p.PID()
			p.Stop(2 * time.Second)
			if Alive(pid) || len(groupMembers(pid)) > 0 {
				t.Errorf("%s left processes behind: %v", tt.cache, groupMembers(pid))
			}
		})
	}
}
