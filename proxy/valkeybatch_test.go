package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

const valkeyBatchPath = "/api/vultr/valkey/batch"

// valkeyBatchRig is the simulated app, and a Sheepdog in front of it whose
// valkey-batch route runs natively on the test's Redis (the L2 connection,
// or addrs when set), with a cached read tagged valkey and one that is not.
type valkeyBatchRig struct {
	app    *shepherd.App
	proxy  *Proxy
	origin *fasthttp.HostClient // the app, straight
	c      *fasthttp.HostClient // through Sheepdog
	redis  *redis.Client
	prefix string
}

func newValkeyBatchRig(t *testing.T, addrs string) *valkeyBatchRig {
	t.Helper()
	r := &valkeyBatchRig{}
	var addr string
	r.redis, addr, r.prefix = testRedis(t)
	var originAddr string
	r.app, originAddr = startOrigin(t)
	r.origin = rawClient(originAddr)
	src := fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s}
cache: {l2: {addrs: ["%s"], key_prefix: "%scache:"}}
routes:
  - name: valkey-batch
    match: {method: POST, path: %s}
    batch: {sink: valkey, op: batch, %s}
    invalidates: [valkey]
  - name: valkey-metrics
    match: {method: GET, path: /api/vultr/valkey/metrics}
    cache: {ttl: 60s, tags: [valkey]}
  - name: products
    match: {method: GET, path: /api/vultr/postgres/products}
    cache: {ttl: 60s, tags: [products]}
  - name: everything-else
    match: {path_prefix: /}
    pass: {}
`, originAddr, addr, r.prefix, valkeyBatchPath, addrs)
	cfg, err := configs.Parse("valkey-batch-test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	var proxyAddr string
	r.proxy, proxyAddr, _ = startProxy(t, cfg)
	r.c = rawClient(proxyAddr)
	return r
}

// send posts body with X-Request-Id id and returns the status and body.
func sendBatch(t *testing.T, c *fasthttp.HostClient, id, body string) (int, string) {
	t.Helper()
	resp := get(t, c, "POST", valkeyBatchPath, "Content-Type", "application/json", "X-Request-Id", id, "body", body)
	defer fasthttp.ReleaseResponse(resp)
	return resp.StatusCode(), string(resp.Body())
}

var isoTimestamp = regexp.MustCompile(`"timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"`)

// sameButTimestamp checks that got is want but for the timestamp, which
// both must carry in the app's form.
func sameButTimestamp(t *testing.T, what, got, want string) {
	t.Helper()
	if !isoTimestamp.MatchString(got) || !isoTimestamp.MatchString(want) {
		t.Errorf("%s: a timestamp is missing or malformed\n sheepdog %s\n app      %s", what, got, want)
	}
	g := isoTimestamp.ReplaceAllString(got, `"timestamp":"T"`)
	w := isoTimestamp.ReplaceAllString(want, `"timestamp":"T"`)
	if g != w {
		t.Errorf("%s:\n sheepdog %s\n app      %s", what, g, w)
	}
}

// diffOps are the operations sent both ways; %[1]s is the test's prefix.
// They cover every branch of the app's valkeyBatch: set with and without
// ttl, a ttl as a string, negative, an array, zero and "0", values of
// every JSON type, gets of set, missing and odd keys, delete, unknown
// types and non-object operations.
const diffOps = `{"operations":[
	{"type":"set","key":"%[1]sstr2","value":"plain \u00e9 \"q\" \u2028 x<y \ud83d\ude00"},
	{"type":"set","key":"%[1]sstr","value":"plain \u00e9 \"q\" \u2028 x<y"},
	{"type":"set","key":"%[1]sobj","value":{"b":1,"2":true,"a":[1.50,"x",null],"1":{"z":-0}},"ttl":60},
	{"type":"set","key":"%[1]snum","value":1.50,"ttl":"30"},
	{"type":"set","key":"%[1]sjsonstr","value":"{\"k\": [1, 2]}","ttl":0},
	{"type":"set","key":"%[1]snotjson","value":"not json","ttl":null},
	{"type":"set","key":"%[1]sbool","value":false},
	{"type":"set","key":"%[1]snull","value":null},
	{"type":"set","key":"%[1]snovalue"},
	{"type":"set","key":"%[1]sneg","value":1,"ttl":-1},
	{"type":"set","key":"%[1]sarr","value":1,"ttl":[1]},
	{"type":"set","key":"%[1]szero","value":1,"ttl":"0"},
	{"type":"set","key":"%[1]sfrac","value":1,"ttl":1.5},
	{"type":"set","key":"%[1]strue","value":1,"ttl":true},
	{"type":"set","key":["%[1]sarrkey",7,null],"value":"via an array key","ttl":"45"},
	{"type":"get","key":"%[1]sstr"},
	{"type":"get","key":"%[1]sstr2"},
	{"type":"get","key":"%[1]sobj"},
	{"type":"get","key":"%[1]snum"},
	{"type":"get","key":"%[1]sjsonstr"},
	{"type":"get","key":"%[1]snotjson"},
	{"type":"get","key":"%[1]sbool"},
	{"type":"get","key":"%[1]snull"},
	{"type":"get","key":"%[1]snovalue"},
	{"type":"get","key":"%[1]sneg"},
	{"type":"get","key":["%[1]sarrkey",7,null]},
	{"type":"get","key":"%[1]sarrkey,7,"},
	{"type":"get","key":"%[1]smissing"},
	{"type":"get","key":1e21},
	{"type":"get"},
	{"type":"flush","key":"%[1]sstr"},
	{"type":["set"],"key":"%[1]sstr"},
	{"type":"SET","key":"%[1]sstr"},
	5,
	"set",
	[],
	{"type":"delete","key":"%[1]snotjson"},
	{"type":"get","key":"%[1]snotjson"},
	{"key":"%[1]sstr","type":"get","type":"delete"},
	{"type":"get","key":"%[1]sstr"}
]}`

// TestValkeyBatchMatchesApp: the same operations sent to the simulated app
// and through Sheepdog's native route answer the same bytes but for the
// timestamp, and the app sees no request for the route.
func TestValkeyBatchMatchesApp(t *testing.T) {
	r := newValkeyBatchRig(t, "")
	body := fmt.Sprintf(diffOps, r.prefix)
	if !json.Valid([]byte(body)) {
		t.Fatalf("test body is not JSON: %s", body)
	}
	r.app.ResetStats()
	status, got := sendBatch(t, r.c, "diff-1", body)
	if n := r.app.Stats().Total; n != 0 {
		t.Errorf("the app saw %d requests: the route must not reach it", n)
	}
	wantStatus, want := sendBatch(t, r.origin, "diff-1", body)
	if status != wantStatus {
		t.Errorf("status %d, app %d", status, wantStatus)
	}
	sameButTimestamp(t, "batch", got, want)
	if !strings.HasPrefix(got, `{"success":true,"data":{"results":[{"success":true,"key":"`) ||
		!strings.Contains(got, `"requestId":"diff-1"`) {
		t.Errorf("not the app's envelope: %s", got)
	}

	// The app's error answers, the same way.
	for _, tt := range []struct{ name, body string }{
		{"operations not an array", `{"operations":{"0":{"type":"get","key":"x"}}}`},
		{"no operations", `{"ops":[]}`},
		{"operations null", `{"operations":null}`},
		{"body an array", `[{"type":"get","key":"x"}]`},
		{"empty", `{"operations":[]}`},
		{"null operation", fmt.Sprintf(`{"operations":[{"type":"set","key":"%snull-before","value":1},null,{"type":"set","key":"%snull-after","value":1}]}`, r.prefix, r.prefix)},
	} {
		status, got := sendBatch(t, r.c, "err-1", tt.body)
		wantStatus, want := sendBatch(t, r.origin, "err-1", tt.body)
		if status != wantStatus {
			t.Errorf("%s: status %d, app %d (%s)", tt.name, status, wantStatus, got)
		}
		sameButTimestamp(t, tt.name, got, want)
	}
	// The app ran the operations before the null one, and not those after.
	ctx := context.Background()
	if v, err := r.redis.Get(ctx, r.prefix+"null-before").Result(); err != nil || v != "1" {
		t.Errorf("set before the null operation: %q %v", v, err)
	}
	if n := r.redis.Exists(ctx, r.prefix+"null-after").Val(); n != 0 {
		t.Errorf("set after the null operation was written")
	}
	// No request id: a UUID, as the app makes one.
	resp := get(t, r.c, "POST", valkeyBatchPath, "body", `{"operations":[]}`)
	defer fasthttp.ReleaseResponse(resp)
	if !regexp.MustCompile(`"requestId":"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"`).Match(resp.Body()) {
		t.Errorf("no X-Request-Id: %s", resp.Body())
	}
	if n := r.app.Stats().Routes["valkey.batch"]; n != uint64(7) {
		t.Errorf("the app answered %d batches: want only the 7 sent to it straight", n)
	}
}

// TestValkeyBatchStoresAsApp: the keys land in the real Redis with the
// app's encoding and expiry, without the cache's key_prefix, and a set
// the app would refuse writes nothing.
func TestValkeyBatchStoresAsApp(t *testing.T) {
	r := newValkeyBatchRig(t, "")
	p := r.prefix
	status, _ := sendBatch(t, r.c, "store-1", fmt.Sprintf(diffOps, p))
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	ctx := context.Background()
	for _, tt := range []struct {
		key, value string
		ttl        time.Duration // -1: no expiry
	}{
		{"str2", "plain é \"q\" \u2028 x<y 😀", -1},
		{"obj", `{"1":{"z":0},"2":true,"b":1,"a":[1.5,"x",null]}`, 60 * time.Second},
		{"num", "1.5", 30 * time.Second},
		{"jsonstr", `{"k": [1, 2]}`, -1},
		{"bool", "false", -1},
		{"null", "null", -1},
		{"novalue", "", -1},
		{"arrkey,7,", "via an array key", 45 * time.Second},
	} {
		got, err := r.redis.Get(ctx, p+tt.key).Result()
		if err != nil || got != tt.value {
			t.Errorf("%s = %q (%v), want %q", tt.key, got, err, tt.value)
		}
		ttl := r.redis.TTL(ctx, p+tt.key).Val()
		switch {
		case tt.ttl < 0 && ttl != -1:
			t.Errorf("%s: ttl %v, want none", tt.key, ttl)
		case tt.ttl > 0 && (ttl > tt.ttl || ttl < tt.ttl-5*time.Second):
			t.Errorf("%s: ttl %v, want %v", tt.key, ttl, tt.ttl)
		}
	}
	for _, k := range []string{"neg", "arr", "zero", "frac", "true", "notjson", "missing"} {
		if r.redis.Exists(ctx, p+k).Val() != 0 {
			t.Errorf("%s exists: a refused set or a deleted key", k)
		}
	}
	// The last operations deleted str: it is gone.
	if r.redis.Exists(ctx, p+"str").Val() != 0 {
		t.Errorf("str was not deleted")
	}
	if n, _ := r.redis.Keys(ctx, p+"cache:*"+p+"*").Result(); len(n) != 0 {
		t.Errorf("keys written under the cache's key_prefix: %v", n)
	}
}

// pipelineCounter counts what a go-redis client sends: pipelines, the
// commands in them, and commands sent on their own (but for the
// handshake go-redis sends on each new connection).
type pipelineCounter struct {
	pipelines, piped, single atomic.Int64
}

func (c *pipelineCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "hello", "client", "auth", "select":
			// a new connection's handshake, not a request's command
		default:
			c.single.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.pipelines.Add(1)
		c.piped.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// TestValkeyBatchOnePipeline: one request is one pipelined round trip on
// the sink's client, with every operation the app would send in it, and
// the app sees no request.
func TestValkeyBatchOnePipeline(t *testing.T) {
	r := newValkeyBatchRig(t, "")
	if len(r.proxy.valkeyClients) != 1 {
		t.Fatalf("%d sink clients, want 1", len(r.proxy.valkeyClients))
	}
	var count pipelineCounter
	r.proxy.valkeyClients[0].AddHook(&count)
	r.app.ResetStats()
	p := r.prefix
	for i := range 3 {
		status, body := sendBatch(t, r.c, "pipe", fmt.Sprintf(`{"operations":[
			{"type":"set","key":"%[1]sa%[2]d","value":{"i":%[2]d},"ttl":60},
			{"type":"set","key":"%[1]sb%[2]d","value":"x"},
			{"type":"set","key":"%[1]sc%[2]d","value":"x","ttl":-1},
			{"type":"get","key":"%[1]sa%[2]d"},
			{"type":"delete","key":"%[1]sb%[2]d"},
			{"type":"noop","key":"%[1]sb%[2]d"}]}`, p, i))
		if status != 200 || !strings.Contains(body, fmt.Sprintf(`"value":{"i":%d}`, i)) {
			t.Fatalf("status %d %s", status, body)
		}
		// A refused set and an unknown type send nothing.
		if got := count.pipelines.Load(); got != int64(i+1) {
			t.Errorf("after %d requests: %d pipelines", i+1, got)
		}
		if got := count.piped.Load(); got != int64(4*(i+1)) {
			t.Errorf("after %d requests: %d commands piped, want %d", i+1, got, 4*(i+1))
		}
	}
	if got := count.single.Load(); got != 0 {
		t.Errorf("%d commands sent outside the pipeline", got)
	}
	if n := r.app.Stats().Total; n != 0 {
		t.Errorf("the app saw %d requests", n)
	}
	// Only refused sets and unknown types: no round trip at all.
	if status, _ := sendBatch(t, r.c, "none", `{"operations":[{"type":"set","key":"k","ttl":"x"},{"type":"x"}]}`); status != 200 {
		t.Errorf("status %d", status)
	}
	if got := count.pipelines.Load(); got != 3 {
		t.Errorf("%d pipelines after a batch with nothing to send, want 3", got)
	}
}

// TestValkeyBatchInvalidates: a successful batch drops the reads tagged
// valkey (and keeps the others), so the next read goes to the app.
func TestValkeyBatchInvalidates(t *testing.T) {
	r := newValkeyBatchRig(t, "")
	read := func(path string) string {
		resp := get(t, r.c, "GET", path)
		defer fasthttp.ReleaseResponse(resp)
		return string(resp.Header.Peek("X-Cache"))
	}
	const metrics, products = "/api/vultr/valkey/metrics", "/api/vultr/postgres/products"
	for _, path := range []string{metrics, products} {
		read(path)
		if got := read(path); !strings.HasPrefix(got, "HIT") {
			t.Fatalf("%s second read: X-Cache %q, want a hit", path, got)
		}
	}
	r.app.ResetStats()
	status, body := sendBatch(t, r.c, "inv", fmt.Sprintf(`{"operations":[{"type":"set","key":"%sk","value":1}]}`, r.prefix))
	if status != 200 {
		t.Fatalf("batch: %d %s", status, body)
	}
	if got := read(metrics); strings.HasPrefix(got, "HIT") {
		t.Errorf("metrics after the batch: X-Cache %q, want a miss", got)
	}
	if got := read(products); !strings.HasPrefix(got, "HIT") {
		t.Errorf("products after the batch: X-Cache %q, want still a hit", got)
	}
	if n := r.app.Stats().Routes["valkey.metrics"]; n != 1 {
		t.Errorf("the app answered metrics %d times after the batch, want 1", n)
	}
	if n := r.app.Stats().Routes["valkey.batch"]; n != 0 {
		t.Errorf("the app saw %d batches", n)
	}

	// A refused batch (operations not an array) drops nothing.
	read(metrics)
	if status, _ := sendBatch(t, r.c, "inv", `{"operations":1}`); status != 400 {
		t.Errorf("status %d, want 400", status)
	}
	if got := read(metrics); !strings.HasPrefix(got, "HIT") {
		t.Errorf("metrics after a refused batch: X-Cache %q, want a hit", got)
	}
}

// TestValkeyBatchStoreDown: with the sink's Valkey unreachable the route
// answers 503 as the other valkey sink routes do, and drops nothing.
func TestValkeyBatchStoreDown(t *testing.T) {
	dead := servicetest.FreeAddr(t)
	r := newValkeyBatchRig(t, fmt.Sprintf(`addrs: ["%s"]`, dead))
	resp := get(t, r.c, "POST", valkeyBatchPath, "body", `{"operations":[{"type":"set","key":"k","value":1}]}`)
	defer fasthttp.ReleaseResponse(resp)
	if resp.StatusCode() != 503 || string(resp.Header.Peek("Retry-After")) != "1" ||
		!strings.Contains(string(resp.Body()), `"code":"store_unavailable"`) {
		t.Errorf("valkey down: %d Retry-After %q %s", resp.StatusCode(), resp.Header.Peek("Retry-After"), resp.Body())
	}
	if n := r.app.Stats().Total; n != 0 {
		t.Errorf("the app saw %d requests", n)
	}
}
