package configs

import (
	"strings"
	"testing"
	"time"
)

func TestRouteTable(t *testing.T) {
	src := `listen: 127.0.0.1:8080
admin: {token: secret-token}
upstream: {url: http://127.0.0.1:3001}
cache: {l2: {addrs: [127.0.0.1:6379], password: hunter2}}
postgres: {dsn: postgres://x}
routes:
  - name: products
    match: {method: GET, path: /api/p}
    cache: {ttl: 60s, stale_while_revalidate: 30s, stale_if_error: 10m, key: {query: [category, limit=10]}, tags: [products]}
  - name: orders
    match: {method: POST, path: /api/o}
    batch: {sink: postgres, table: orders, columns: {user_id: "{body.u}", order_id: "{id:o_}"}}
    invalidates: ["orders:{body.u}"]
  - name: all
    match: {path_prefix: /api/}
    pass: {}
`
	cfg, err := ParseWithEnv("t.yaml", []byte(src), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"listen 127.0.0.1:8080 · admin 127.0.0.1:9901 (token set) · upstream http://127.0.0.1:3001 (timeout 10s) · l1 256MiB · l2 127.0.0.1:6379",
		"NAME      METHOD  PATH    ACTION  DETAILS",
		"products  GET     /api/p  cache   ttl=1m swr=30s sie=10m key.query=category,limit=10 tags=products",
		"orders    POST    /api/o  batch   postgres→orders(order_id,user_id) max_items=100 max_wait=2ms invalidates=orders:{body.u}",
		"all       *       /api/*  pass",
		"",
	}, "\n")
	got := cfg.RouteTable()
	if got != want {
		t.Fatalf("RouteTable():\n%s\nwant:\n%s", got, want)
	}
	for _, secret := range []string{"secret-token", "hunter2", "postgres://x"} {
		if strings.Contains(got, secret) {
			t.Errorf("RouteTable shows %q", secret)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for in, want := range map[string]string{"2ms": "2ms", "60s": "1m", "90s": "1m30s", "10m": "10m", "1h": "1h", "1h30m": "1h30m"} {
		t.Run(in, func(t *testing.T) {
			d, err := time.ParseDuration(in)
			if err != nil {
				t.Fatal(err)
			}
			if got := shortDuration(d); got != want {
				t.Errorf("shortDuration(%s) = %q, want %q", in, got, want)
			}
		})
	}
}
