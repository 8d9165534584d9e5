package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// batchRig is the simulated app behind a Sheepdog whose write routes are
// batched into the test's own Valkey keys and PostgreSQL schema.
type batchRig struct {
	app    *shepherd.App
	proxy  *Proxy
	c      *fasthttp.HostClient
	admin  *fasthttp.HostClient
	redis  *redis.Client
	prefix string        // the test's Valkey keys
	pool   *pgxpool.Pool // the test's schema
	table  string        // schema.orders
}

// batchOptions changes the rig: the store-memory batch block's extra
// keys, and the postgres DSN (empty: the test database).
type batchOptions struct {
	storeMemory string
	dsn         string
	table       string // the create-order table, if not the test's own
	orders      string // more keys of create-order's batch block, as "key: value"
}

func newBatchRig(t *testing.T, opt batchOptions) *batchRig {
	t.Helper()
	r := &batchRig{}
	var addr string
	r.redis, addr, r.prefix = testRedis(t)
	r.pool, r.table = testOrdersTable(t)
	table := r.table
	if opt.table != "" {
		table = opt.table
	}
	dsn := opt.dsn
	if dsn == "" {
		dsn = servicetest.PostgresDSN(t)
	}
	var originAddr string
	r.app, originAddr = startOrigin(t)
	src := fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s}
postgres: {dsn: "%s"}
routes:
  - name: cache-set
    match: {method: POST, path: "/api/vultr/valkey/cache/{key}"}
    batch: {sink: valkey, op: set, key: "%s{path.key}", value: "{body.value}", ttl: "{body.ttl=0}",
            addrs: ["%s"], max_wait: 5ms}
  - name: cache-delete
    match: {method: DELETE, path: "/api/vultr/valkey/cache/{key}"}
    batch: {sink: valkey, op: del, key: "%s{path.key}", addrs: ["%s"]}
  - name: session-touch
    match: {method: POST, path: "/api/vultr/valkey/session/{sessionId}/touch"}
    batch: {sink: valkey, op: expire, key: "%ssession:{path.sessionId}", ttl: "60", addrs: ["%s"]}
  - name: session-write
    match: {method: POST, path: "/api/vultr/valkey/session/{sessionId}"}
    batch: {sink: valkey, op: set, key: "%ssession:{path.sessionId}", value: "{body}", ttl: "{body.ttl=0}",
            ttl_default: 86400, addrs: ["%s"]}
  - name: store-memory
    match: {method: POST, path: /api/raindrop/store-memory}
    batch: {sink: http, url: /api/raindrop/batch-store-memory, wrap: memories, split: results, %s}
    invalidates: ["memory:{body.userId=demo_user}"]
  - name: search-memory
    match: {method: POST, path: /api/raindrop/search-memory}
    cache: {ttl: 2m, key: {body: [userId=demo_user, q=, topK=20]}, tags: ["memory:{body.userId=demo_user}"]}
  - name: create-order
    match: {method: POST, path: /api/vultr/postgres/orders}
    batch:
      sink: postgres
      table: %s
      columns: {order_id: "{id:order_}", user_id: "{body.user_id}", items: "{body.items}",
                total_amount: "{body.total_amount}", status: "{body.status||pending}"}
      returning: {orderId: order_id}
      %s
    invalidates: ["orders:{body.user_id}"]
  - name: everything-else
    match: {path_prefix: /}
    pass: {}
`, originAddr, dsn, r.prefix, addr, r.prefix, addr, r.prefix, addr, r.prefix, addr, opt.storeMemory, table, opt.orders)
	cfg, err := configs.Parse("batch-test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	var proxyAddr, adminAddr string
	r.proxy, proxyAddr, adminAddr = startProxy(t, cfg)
	r.c = rawClient(proxyAddr)
	r.c.MaxConns = 200
	r.admin = rawClient(adminAddr)
	return r
}

// testRedis is a client of the shared test Redis, closed when the test
// ends, its address, and a key prefix of the test's own.
func testRedis(t *testing.T) (*redis.Client, string, string) {
	t.Helper()
	addr := servicetest.RedisAddr(t)
	prefix := servicetest.KeyPrefix(t)
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c, addr, prefix
}

// testOrdersTable is a table shaped like the app's orders, in the test's
// own schema (servicetest.OrdersTable).
func testOrdersTable(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	return servicetest.OrdersTable(t, 0)
}

// post sends a JSON body and returns the status and body.
func (r *batchRig) post(t *testing.T, path, body string) (int, []byte, *fasthttp.ResponseHeader) {
	t.Helper()
	resp := get(t, r.c, "POST", path, "Content-Type", "application/json", "body", body)
	defer fasthttp.ReleaseResponse(resp)
	var h fasthttp.ResponseHeader
	resp.Header.CopyTo(&h)
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), &h
}

// batchStats reads a route's batch counters from the admin /stats.
func (r *batchRig) batchStats(t *testing.T, name string) BatchStats {
	t.Helper()
	resp := get(t, r.admin, "GET", "/stats")
	defer fasthttp.ReleaseResponse(resp)
	var s struct {
		Routes []struct {
			Name  string      `json:"name"`
			Batch *BatchStats `json:"batch"`
		} `json:"routes"`
	}
	if err := json.Unmarshal(resp.Body(), &s); err != nil {
		t.Fatalf("/stats: %v", err)
	}
	for _, rt := range s.Routes {
		if rt.Name == name && rt.Batch != nil {
			return *rt.Batch
		}
	}
	t.Fatalf("/stats has no batch entry for %s: %s", name, resp.Body())
	return BatchStats{}
}

// burst runs n calls of f at once and waits for them.
func burst(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f(i)
		}()
	}
	close(start)
	wg.Wait()
}

// TestBatchValkeyCacheSet: a burst of cache sets lands in fewer round
// trips than items, and each key reads back as the app would store it.
func TestBatchValkeyCacheSet(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms"})
	const n = 50
	values := func(i int) (body, stored string, ttl bool) {
		switch i % 3 {
		case 0:
			return fmt.Sprintf(`{"value":"plain %d","ttl":null}`, i), fmt.Sprintf("plain %d", i), false
		case 1:
			return fmt.Sprintf(`{"value":{"z":%d,"a":["x<y"]},"ttl":60}`, i), fmt.Sprintf(`{"z":%d,"a":["x<y"]}`, i), true
		default:
			return fmt.Sprintf(`{"value":%d,"ttl":"30"}`, i), fmt.Sprint(i), true
		}
	}
	var mu sync.Mutex
	var failures []string
	burst(n, func(i int) {
		body, _, _ := values(i)
		status, answer, _ := r.post(t, fmt.Sprintf("/api/vultr/valkey/cache/k%d", i), body)
		if status != 200 || !isAppSuccess(answer) {
			mu.Lock()
			failures = append(failures, fmt.Sprintf("k%d: %d %s", i, status, answer))
			mu.Unlock()
		}
	})
	if len(failures) > 0 {
		t.Fatalf("%d failures, first: %s", len(failures), failures[0])
	}
	ctx := context.Background()
	for i := range n {
		key := fmt.Sprintf("%sk%d", r.prefix, i)
		_, want, withTTL := values(i)
		got, err := r.redis.Get(ctx, key).Result()
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", key, got, err, want)
		}
		ttl := r.redis.TTL(ctx, key).Val()
		if withTTL != (ttl > 0) || ttl > 60*time.Second {
			t.Errorf("%s TTL %v; want an expiry: %v", key, ttl, withTTL)
		}
	}
	s := r.batchStats(t, "cache-set")
	if s.Items != n || s.Batches >= n || s.Batches == 0 {
		t.Errorf("stats %+v: want %d items in fewer than %d batches", s, n, n)
	}
	t.Logf("%d sets in %d round trips", s.Items, s.Batches)
}

// TestBatchBodilessValkeyWrites: a del or expire route whose templates
// read no body takes a request without one, as the app does; they were
// refused 400 "not valid JSON". A body that is there must still be JSON.
func TestBatchBodilessValkeyWrites(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms"})
	ctx := context.Background()
	r.redis.Set(ctx, r.prefix+"gone", "x", 0)
	r.redis.Set(ctx, r.prefix+"session:s1", "{}", 0)

	for _, req := range []struct{ method, path string }{
		{"DELETE", "/api/vultr/valkey/cache/gone"},
		{"POST", "/api/vultr/valkey/session/s1/touch"},
	} {
		resp := get(t, r.c, req.method, req.path)
		if resp.StatusCode() != 200 || !isAppSuccess(resp.Body()) {
			t.Errorf("%s %s without a body: %d %s, want 200 {\"success\":true}", req.method, req.path, resp.StatusCode(), resp.Body())
		}
		fasthttp.ReleaseResponse(resp)
	}
	if n := r.redis.Exists(ctx, r.prefix+"gone").Val(); n != 0 {
		t.Errorf("the deleted key still exists")
	}
	if ttl := r.redis.TTL(ctx, r.prefix+"session:s1").Val(); ttl <= 0 || ttl > 60*time.Second {
		t.Errorf("the touched session's TTL is %v, want up to 60s", ttl)
	}
	resp := get(t, r.c, "DELETE", "/api/vultr/valkey/cache/gone", "Content-Type", "application/json", "body", "{oops")
	if resp.StatusCode() != 400 {
		t.Errorf("a body that is not JSON: %d %s, want 400", resp.StatusCode(), resp.Body())
	}
	fasthttp.ReleaseResponse(resp)
}

// TestBatchStoreMemory: a burst of store-memory goes to the app's batch
// endpoint; each caller gets its own {success, source, id}; the write
// drops the cached search, which then shows every memory.
func TestBatchStoreMemory(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_items: 100, max_wait: 2ms"})
	const search = `{"userId":"batch_user","q":"","topK":100}`
	for range 2 { // a miss, then a hit
		if status, _, _ := r.post(t, "/api/raindrop/search-memory", search); status != 200 {
			t.Fatalf("search: %d", status)
		}
	}
	const n = 30
	var mu sync.Mutex
	ids := map[string]bool{}
	var failures []string
	burst(n, func(i int) {
		status, answer, _ := r.post(t, "/api/raindrop/store-memory",
			fmt.Sprintf(`{"userId":"batch_user","text":"note %d"}`, i))
		var res struct {
			Success bool   `json:"success"`
			Source  string `json:"source"`
			ID      string `json:"id"`
		}
		err := json.Unmarshal(answer, &res)
		mu.Lock()
		defer mu.Unlock()
		if status != 200 || err != nil || !res.Success || res.Source != "mock" || res.ID == "" {
			failures = append(failures, fmt.Sprintf("%d %s", status, answer))
			return
		}
		ids[res.ID] = true
	})
	if len(failures) > 0 {
		t.Fatalf("%d failures, first: %s", len(failures), failures[0])
	}
	if len(ids) != n {
		t.Errorf("%d distinct ids for %d stores", len(ids), n)
	}
	if single, batches := count(r.app, "memory.store"), count(r.app, "memory.batch"); single != 0 || batches >= n {
		t.Errorf("app saw %d single stores and %d batch calls; want 0 and fewer than %d", single, batches, n)
	}
	status, answer, _ := r.post(t, "/api/raindrop/search-memory", search)
	var found struct {
		Results []struct{ ID string } `json:"results"`
	}
	if err := json.Unmarshal(answer, &found); status != 200 || err != nil {
		t.Fatalf("search after the writes: %d %s", status, answer)
	}
	for _, m := range found.Results {
		delete(ids, m.ID)
	}
	if len(ids) != 0 || count(r.app, "memory.search") != 2 {
		t.Errorf("search after the writes: %d stored ids missing, %d app searches (want 0 and 2: the write drops the cached answer)",
			len(ids), count(r.app, "memory.search"))
	}
}

var orderID = regexp.MustCompile(`^order_\d{13}_[0-9a-z]{9}$`)

// TestBatchCreateOrder: an order lands in the test's table through one
// INSERT ... RETURNING and is answered in the app's shape.
func TestBatchCreateOrder(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms"})
	const body = `{"user_id":"user_1","items":[{"product_id":"p1","quantity":2,"price":19.99,"size":"M"}],"total_amount":39.98}`
	const n = 10
	var mu sync.Mutex
	var answers [][]byte
	burst(n, func(int) {
		status, answer, h := r.post(t, "/api/vultr/postgres/orders", body)
		if status != 200 || !strings.HasPrefix(string(h.ContentType()), "application/json") {
			t.Errorf("order: %d %s", status, answer)
			return
		}
		mu.Lock()
		answers = append(answers, answer)
		mu.Unlock()
	})
	ids := map[string]bool{}
	for _, a := range answers {
		var got struct {
			Success bool            `json:"success"`
			Data    json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(a, &got); err != nil || !got.Success {
			t.Fatalf("answer %s: %v", a, err)
		}
		// {orderId, ...body}, as the app answers (API.md).
		rest, ok := strings.CutPrefix(string(got.Data), `{"orderId":"`)
		id, after, found := strings.Cut(rest, `",`)
		if !ok || !found || "{"+after != body || !orderID.MatchString(id) {
			t.Errorf("data %s: want orderId like order_<ms>_<9 base36>, then the body", got.Data)
			continue
		}
		ids[id] = true
	}
	if len(ids) != n {
		t.Fatalf("%d distinct order ids for %d orders", len(ids), n)
	}
	var rows int
	var items, total, status string
	ctx := context.Background()
	err := r.pool.QueryRow(ctx, `SELECT count(*), min(items::text), min(total_amount::text), min(status) FROM `+r.table).
		Scan(&rows, &items, &total, &status)
	if err != nil || rows != n || total != "39.98" || status != "pending" ||
		items != `[{"size": "M", "price": 19.99, "quantity": 2, "product_id": "p1"}]` {
		t.Errorf("table: %d rows, items %s, total %s, status %s, %v", rows, items, total, status, err)
	}
	if s := r.batchStats(t, "create-order"); s.Items != n || s.Pool == nil || s.Pool.TotalCount == 0 {
		t.Errorf("stats %+v: want %d items and pool stats", s, n)
	}
	if pg := r.health(t).Dependencies["postgres"]; pg.State != stateOK {
		t.Errorf("health postgres %+v, want ok", pg)
	}
}

// TestBatchBodyAppWouldNotRead: a body express.json() would not read (not
// application/json) is the app's to answer, as it would: here, a memory
// without text.
func TestBatchBodyAppWouldNotRead(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms"})
	resp := get(t, r.c, "POST", "/api/raindrop/store-memory", "Content-Type", "text/plain", "body", `{"userId":"u","text":"t"}`)
	defer fasthttp.ReleaseResponse(resp)
	if resp.StatusCode() != 400 || !strings.Contains(string(resp.Body()), "VALIDATION_ERROR") {
		t.Errorf("store-memory sent as text/plain: %d %s, want the app's 400", resp.StatusCode(), resp.Body())
	}
}

// TestBatchBadRequests: a request that cannot make an item is a 400
// naming the problem, and nothing is queued.
func TestBatchBadRequests(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms"})
	for _, tc := range []struct {
		name, path, body, inMessage string
	}{
		{"malformed JSON, valkey", "/api/vultr/valkey/cache/k", `{"value":`, "not valid JSON"},
		{"malformed JSON, http", "/api/raindrop/store-memory", `{"text":"a"}x`, "not valid JSON"},
		{"empty body", "/api/vultr/postgres/orders", ``, "not valid JSON"},
		{"missing value", "/api/vultr/valkey/cache/k", `{"ttl":5}`, "body.value"},
		{"missing column value", "/api/vultr/postgres/orders", `{"items":[],"total_amount":1}`, "body.user_id"},
		{"bad ttl", "/api/vultr/valkey/cache/k", `{"value":1,"ttl":"soon"}`, "ttl"},
		{"negative ttl", "/api/vultr/valkey/cache/k", `{"value":1,"ttl":-1}`, "ttl"},
		{"fractional ttl", "/api/vultr/valkey/cache/k", `{"value":1,"ttl":1.5}`, "ttl"},
		{"ttl past Valkey's limit", "/api/vultr/valkey/cache/k", `{"value":1,"ttl":9223372036854775}`, "ttl"},
		// Truthy to the app, so not "no expiry": SETEX refuses them.
		{"ttl the string 0", "/api/vultr/valkey/cache/k", `{"value":1,"ttl":"0"}`, "ttl"},
		{"ttl the string false", "/api/vultr/valkey/cache/k", `{"value":1,"ttl":"false"}`, "ttl"},
		{"ttl an empty array", "/api/vultr/valkey/cache/k", `{"value":1,"ttl":[]}`, "ttl"},
		{"body not an object", "/api/vultr/postgres/orders", `[1,2]`, "object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := get(t, r.c, "POST", tc.path, "Content-Type", "application/json", "body", tc.body)
			defer fasthttp.ReleaseResponse(resp)
			errorBody(t, resp, 400, codeBadRequest)
			if !strings.Contains(string(resp.Body()), tc.inMessage) {
				t.Errorf("body %s: want it to name %q", resp.Body(), tc.inMessage)
			}
		})
	}
	for _, name := range []string{"cache-set", "store-memory", "create-order"} {
		if s := r.batchStats(t, name); s.Items != 0 {
			t.Errorf("%s queued %d items", name, s.Items)
		}
	}
}

// TestBatchMalformedBody: a chunked body that cannot be read (a chunk
// size that is not hex, a chunk shorter than it says) is the client's
// 400 as JSON, on batch routes and on cache routes that read the body,
// and nothing is queued.
func TestBatchMalformedBody(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms"})
	for _, path := range []string{"/api/raindrop/store-memory", "/api/raindrop/search-memory"} {
		for name, chunks := range map[string]string{
			"chunk size not hex": "zz\r\n{}\r\n0\r\n\r\n",
			"chunk short":        "40\r\n{\"text\":\"a\"}\r\n0\r\n\r\n",
		} {
			t.Run(path+" "+name, func(t *testing.T) {
				c := dialRaw(t, r.c.Addr)
				io.WriteString(c, "POST "+path+" HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"+
					"Transfer-Encoding: chunked\r\n\r\n"+chunks)
				if cw, ok := c.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
				resp := fasthttp.AcquireResponse()
				defer fasthttp.ReleaseResponse(resp)
				if err := resp.Read(bufio.NewReader(c)); err != nil {
					t.Fatalf("reading the answer: %v", err)
				}
				errorBody(t, resp, 400, codeBadRequest)
			})
		}
	}
	if s := r.batchStats(t, "store-memory"); s.Items != 0 {
		t.Errorf("store-memory queued %d items", s.Items)
	}
}

// TestBatchQueueFull: with a slow sink and a queue of one, callers beyond
// what the flushes in flight and the queue hold get 503 and Retry-After.
func TestBatchQueueFull(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_items: 1, queue: 1"})
	r.app.SetLatency("memory.batch", 300*time.Millisecond)
	const n = 10
	var mu sync.Mutex
	statuses := map[int]int{}
	burst(n, func(i int) {
		resp := get(t, r.c, "POST", "/api/raindrop/store-memory", "body", fmt.Sprintf(`{"text":"t%d"}`, i))
		defer fasthttp.ReleaseResponse(resp)
		if resp.StatusCode() == 503 {
			errorBody(t, resp, 503, codeQueueFull)
			if got := string(resp.Header.Peek("Retry-After")); got != "1" {
				t.Errorf("Retry-After %q, want 1", got)
			}
		}
		mu.Lock()
		statuses[resp.StatusCode()]++
		mu.Unlock()
	})
	if statuses[503] == 0 || statuses[200] == 0 || statuses[200]+statuses[503] != n {
		t.Errorf("statuses %v: want some 200 and some 503, nothing else", statuses)
	}
	if s := r.batchStats(t, "store-memory"); s.Refused != int64(statuses[503]) {
		t.Errorf("stats refused %d, want %d", s.Refused, statuses[503])
	}
}

// TestBatchPostgresDown: a database that cannot be reached does not stop
// Sheepdog starting; its route answers 503 per item.
func TestBatchPostgresDown(t *testing.T) {
	closed := servicetest.FreeAddr(t)
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms",
		dsn: "postgres://postgres@" + closed + "/test?sslmode=disable&connect_timeout=1"})
	resp := get(t, r.c, "POST", "/api/vultr/postgres/orders", "body", `{"user_id":"u","items":[],"total_amount":1}`)
	defer fasthttp.ReleaseResponse(resp)
	errorBody(t, resp, 503, codeStoreUnavailable)
	if got := string(resp.Header.Peek("Retry-After")); got != "1" {
		t.Errorf("Retry-After %q, want 1", got)
	}
	if h := r.health(t); h.Status != stateDegraded || h.Dependencies["postgres"].State != stateDown {
		t.Errorf("health %+v: want degraded, postgres down", h)
	}
}

// TestBatchPostgresDownPasses: with when_down: pass, a write PostgreSQL
// cannot take goes to the app's own route, which answers it, instead of
// Sheepdog's 503 (the simulated app here has no database of its own, and
// answers its own 500).
func TestBatchPostgresDownPasses(t *testing.T) {
	closed := servicetest.FreeAddr(t)
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms", orders: "when_down: pass",
		dsn: "postgres://postgres@" + closed + "/test?sslmode=disable&connect_timeout=1"})
	_, answer, _ := r.post(t, "/api/vultr/postgres/orders", `{"user_id":"u","items":[],"total_amount":1}`)
	if strings.Contains(string(answer), codeStoreUnavailable) || !strings.Contains(string(answer), "Failed to create order") {
		t.Errorf("PostgreSQL down, when_down pass: %s, want the app's own answer", answer)
	}
}

func (r *batchRig) health(t *testing.T) Health {
	t.Helper()
	resp := get(t, r.admin, "GET", "/health")
	defer fasthttp.ReleaseResponse(resp)
	var h Health
	if err := json.Unmarshal(resp.Body(), &h); err != nil {
		t.Fatalf("/health %s: %v", resp.Body(), err)
	}
	return h
}

// TestBatchShutdownFlushes: writes waiting in a batch when Shutdown
// begins are flushed and answered. (Batcher's own tests check that Close
// leaves no goroutine; here fasthttp's servers leave idle workers that
// sleep for seconds, so a goroutine count cannot tell.)
func TestBatchShutdownFlushes(t *testing.T) {
	rc, addr, prefix := testRedis(t)
	_, originAddr := startOrigin(t)
	cfg, err := configs.Parse("shutdown.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s}
routes:
  - name: cache-set
    match: {method: POST, path: "/api/vultr/valkey/cache/{key}"}
    batch: {sink: valkey, key: "%s{path.key}", value: "{body.value}", addrs: ["%s"], max_wait: 300ms, max_items: 1000}
`, originAddr, prefix, addr)))
	if err != nil {
		t.Fatal(err)
	}
	p, addr, served := serveUntilShutdown(t, cfg)
	c := rawClient(addr)
	defer c.CloseIdleConnections()

	const n = 20
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := get(t, c, "POST", fmt.Sprintf("/api/vultr/valkey/cache/k%d", i), "body", `{"value":"v"}`)
			statuses <- resp.StatusCode()
			fasthttp.ReleaseResponse(resp)
		}()
	}
	time.Sleep(100 * time.Millisecond) // the first flushed alone; the rest wait for max_wait
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Errorf("a write in flight at shutdown got %d", s)
		}
	}
	for i := range n {
		if got := rc.Get(context.Background(), fmt.Sprintf("%sk%d", prefix, i)).Val(); got != "v" {
			t.Errorf("k%d = %q after shutdown, want v", i, got)
		}
	}
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// TestBatchPostgresMissingTable: a sink whose table is not in its
// database passes the route's writes through to the app, once found out,
// rather than fail every one.
func TestBatchPostgresMissingTable(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms", table: "sheepdog_no_such_schema.orders"})
	const body = `{"user_id":"user_1","items":[],"total_amount":5}`
	for i := range 3 {
		status, answer, _ := r.post(t, "/api/vultr/postgres/orders", body)
		if status != 200 || !strings.Contains(string(answer), `"orderId":"order_`) {
			t.Errorf("write %d: %d %s; want the app's own answer", i, status, answer)
		}
	}
	if got := count(r.app, "orders.create"); got != 3 {
		t.Errorf("the app took %d orders, want 3", got)
	}
}

// TestBatchOrderRejected: an order PostgreSQL refuses fails alone, with
// 422; its batch-mates land.
func TestBatchOrderRejected(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms"})
	const n = 10
	var mu sync.Mutex
	statuses := map[int]int{}
	burst(n, func(i int) {
		total := "12.50"
		if i == 3 {
			total = `"not a number"`
		}
		resp := get(t, r.c, "POST", "/api/vultr/postgres/orders", "body",
			fmt.Sprintf(`{"user_id":"user_%d","items":[],"total_amount":%s}`, i, total))
		defer fasthttp.ReleaseResponse(resp)
		if i == 3 {
			errorBody(t, resp, 422, codeWriteRejected)
		}
		mu.Lock()
		statuses[resp.StatusCode()]++
		mu.Unlock()
	})
	if statuses[200] != n-1 || statuses[422] != 1 {
		t.Errorf("statuses %v, want %d of 200 and one 422", statuses, n-1)
	}
	var rows int
	if err := r.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+r.table).Scan(&rows); err != nil || rows != n-1 {
		t.Errorf("%d rows (%v), want %d", rows, err, n-1)
	}
}

// isAppSuccess reports whether a write's answer is the app's
// {"success":true}, with the requestId and ISO timestamp it adds to every
// body.
func isAppSuccess(answer []byte) bool {
	var m map[string]any
	if json.Unmarshal(answer, &m) != nil || len(m) != 3 || m["success"] != true {
		return false
	}
	id, _ := m["requestId"].(string)
	ts, _ := m["timestamp"].(string)
	_, err := time.Parse("2006-01-02T15:04:05.000Z", ts)
	return id != "" && err == nil
}

// TestPostgresAnswer: the body's members in their order, the returned
// columns after them or in place of a member of the same name, then the
// app's requestId and timestamp; written back as the app writes JSON
// (integer-like keys first, JavaScript's numbers, JSON.stringify's
// escapes).
func TestPostgresAnswer(t *testing.T) {
	ret := []returnField{{field: "orderId", column: "order_id"}}
	now := time.Date(2026, 11, 26, 6, 30, 0, 123e6, time.UTC)
	const stamp = `"requestId":"r-1","timestamp":"2026-11-26T06:30:00.123Z"}`
	for _, tc := range []struct {
		name, body string
		returned   map[string]any
		want       string
	}{
		// {orderId, ...body}: the returned column first, the body after it.
		{"first", `{"b":1,"a":[1, 2]}`, map[string]any{"order_id": "o1"},
			`{"success":true,"data":{"orderId":"o1","b":1,"a":[1,2]},` + stamp},
		{"as the app writes it", `{"user_id":"u","items":[ {"product_id" : "p1", "price": 19.990} ],"total_amount":1e1,"note":"\u00e9\/","2":"x","1":"y"}`,
			map[string]any{"order_id": "o3"},
			`{"success":true,"data":{"1":"y","2":"x","orderId":"o3","user_id":"u","items":[{"product_id":"p1","price":19.99}],"total_amount":10,"note":"é/"},` + stamp},
		{"the body's own wins, in its place", `{"x":"<","orderId":"mine"}`, map[string]any{"order_id": "o<2"},
			`{"success":true,"data":{"orderId":"mine","x":"<"},` + stamp},
		{"repeated key keeps its place, last value", `{"a":1,"b":2,"a":3}`, map[string]any{"order_id": nil},
			`{"success":true,"data":{"orderId":null,"a":3,"b":2},` + stamp},
		// A body with a success or error key of its own goes out flat.
		{"flat", `{"success":false,"x":1}`, map[string]any{"order_id": "o4"},
			`{"orderId":"o4","success":false,"x":1,` + stamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fields, err := objectFields([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			got, err := postgresAnswer(fields, ret, tc.returned, "r-1", now)
			if err != nil || string(got) != tc.want+"\n" {
				t.Errorf("got %s, %v; want %s", got, err, tc.want)
			}
		})
	}
}

// TestRawJSONAt: values come back as the client wrote them.
func TestRawJSONAt(t *testing.T) {
	const doc = ` {"a":{"b":[10, {"c": "x"}]},"n":null,"s":"t"} `
	for _, tc := range []struct {
		path string
		want string
		ok   bool
	}{
		{"a", `{"b":[10, {"c": "x"}]}`, true},
		{"a.b.1", `{"c": "x"}`, true},
		{"a.b.1.c", `"x"`, true},
		{"n", `null`, true},
		{"s", `"t"`, true},
		{"a.b.2", ``, false},
		{"a.b.x", ``, false},
		{"s.t", ``, false},
		{"missing", ``, false},
	} {
		got, ok := rawJSONAt([]byte(doc), strings.Split(tc.path, "."))
		if ok != tc.ok || string(got) != tc.want {
			t.Errorf("%s: got %s, %v; want %s, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

func TestNewID(t *testing.T) {
	at := time.UnixMilli(1764072000000)
	seen := map[string]bool{}
	for range 100 {
		id := newID("order_", at)
		if !orderID.MatchString(id) || !strings.HasPrefix(id, "order_1764072000000_") || seen[id] {
			t.Fatalf("id %q: want order_<ms>_<9 base36>, unique", id)
		}
		seen[id] = true
	}
}

// TestBatchEndpointFails: a batch endpoint that answers 5xx fails each
// caller with 502 after one retry, without the batch being split into
// more calls; one that answers 2xx without a results array (the batch
// taken, its answer not split) fails each caller with 502 after one call
// per batch; one that answers 408 fails each with 503 after one call per
// batch; one that refuses the items (4xx, down to each alone) passes each
// caller's request to the app's own route, which answers it as the app
// would (here 200: the route takes what the endpoint refused).
func TestBatchEndpointFails(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		want     int
		maxCalls func(batches int64) uint64
	}{
		{"5xx", 500, 502, func(b int64) uint64 { return uint64(2 * b) }},
		{"2xx not split", 200, 502, func(b int64) uint64 { return uint64(b) }},
		{"408", 408, 503, func(b int64) uint64 { return uint64(b) }},
		{"4xx", 400, 200, func(int64) uint64 { return 1000 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app, originAddr := startOrigin(t)
			cfg, err := configs.Parse("endpoint.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s}
routes:
  - name: store-memory
    match: {method: POST, path: /api/raindrop/store-memory}
    batch: {sink: http, url: "/__origin/echo?status=%d", max_wait: 20ms}
`, originAddr, tc.status)))
			if err != nil {
				t.Fatal(err)
			}
			_, addr, adminAddr := startProxy(t, cfg)
			c := rawClient(addr)
			const n = 20
			var mu sync.Mutex
			statuses := map[int]int{}
			burst(n, func(i int) {
				resp := get(t, c, "POST", "/api/raindrop/store-memory", "body", fmt.Sprintf(`{"text":"t%d"}`, i))
				defer fasthttp.ReleaseResponse(resp)
				switch tc.want {
				case 502:
					errorBody(t, resp, 502, codeBatchFailed)
				case 503: // turned away: not the items' fault, so not split
					errorBody(t, resp, 503, codeUpstreamBusy)
					if got := string(resp.Header.Peek("Retry-After")); got != "1" {
						t.Errorf("Retry-After %q, want the default 1", got)
					}
				}
				mu.Lock()
				statuses[resp.StatusCode()]++
				mu.Unlock()
			})
			if statuses[tc.want] != n {
				t.Errorf("statuses %v, want %d of %d", statuses, n, tc.want)
			}
			r := &batchRig{admin: rawClient(adminAddr)}
			s := r.batchStats(t, "store-memory")
			if calls := count(app, "echo"); calls > tc.maxCalls(s.Batches) || s.Failures != n {
				t.Errorf("%d calls for %d batches, %d failures; want at most %d calls and %d failures",
					calls, s.Batches, s.Failures, tc.maxCalls(s.Batches), n)
			}
		})
	}
}

// TestBatchEndpointThrottled: a batch the app turns away for its load
// (429 from its rate limiter) is not split into more calls; each caller
// gets 503 with the app's own Retry-After.
func TestBatchEndpointThrottled(t *testing.T) {
	app := shepherd.New(shepherd.Config{Now: fixedClock, RateLimit: true})
	originAddr, err := app.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	direct := rawClient(originAddr)
	for range 100 { // the limiter's whole window, from this address
		fasthttp.ReleaseResponse(get(t, direct, "GET", "/api/vultr/health"))
	}
	s := storeMemoryBurst(t, originAddr, "url: /api/raindrop/batch-store-memory, wrap: memories, split: results", func(resp *fasthttp.Response) {
		errorBody(t, resp, 503, codeUpstreamBusy)
		// The fixed clock keeps the whole 15-minute window ahead.
		if got := string(resp.Header.Peek("Retry-After")); got != "900" {
			t.Errorf("Retry-After %q, want the app's 900", got)
		}
	})
	if calls := count(app, "memory.batch"); calls != uint64(s.Batches) || s.Failures != storeMemoryBurstN {
		t.Errorf("%d calls for %d batches, %d failures; want one call per batch and %d failures", calls, s.Batches, s.Failures, storeMemoryBurstN)
	}
}

// FuzzBatchBody: whatever the body, reading it for a batch item never
// panics, and a body read as an object makes a valid JSON answer.
func FuzzBatchBody(f *testing.F) {
	for _, seed := range []string{
		`{"user_id":"u","items":[{"a":1}],"total_amount":1.5}`,
		`{"a":1,"a":2}`, `[1,2]`, `"s"`, `{"x":{"y":[null]}}`, `{`, ``, `{"\u00e9":"<&>"}`,
	} {
		f.Add([]byte(seed), "x.y.0")
	}
	ret := []returnField{{field: "orderId", column: "order_id"}}
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		rawJSONAt(body, strings.Split(path, "."))
		if !json.Valid(body) {
			return
		}
		fields, err := objectFields(body)
		if err != nil {
			return
		}
		answer, err := postgresAnswer(fields, ret, map[string]any{"order_id": "o"}, "r-1", time.Now())
		if err != nil || !json.Valid(answer) {
			t.Fatalf("body %q: answer %q, %v", body, answer, err)
		}
	})
}

// TestBatchSessionSet: a session save stores the whole body, as the app
// does, under session:{id}, for its ttl or, when that is falsy, 86400 s.
// A ttl is read as the app's String(ttl) reads it: 60.0 is 60, 1e3 is
// 1000.
func TestBatchSessionSet(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms"})
	ctx := context.Background()
	for _, tc := range []struct {
		id, body, stored string
		ttl              time.Duration
	}{
		{"s1", `{"userId":"u1","sessionId":"s1","preferences":{"fit":"slim"},"2":1,"1":0}`,
			`{"1":0,"2":1,"userId":"u1","sessionId":"s1","preferences":{"fit":"slim"}}`, 86400 * time.Second},
		{"s2", `{"userId":"u2","ttl":60}`, `{"userId":"u2","ttl":60}`, 60 * time.Second},
		{"s3", `{"userId":"u3","ttl":0}`, `{"userId":"u3","ttl":0}`, 86400 * time.Second},
		{"s4", `{"userId":"u4","ttl":null}`, `{"userId":"u4","ttl":null}`, 86400 * time.Second},
		{"s5", `{"userId":"u5","ttl":60.0}`, `{"userId":"u5","ttl":60}`, 60 * time.Second},
		{"s6", `{"userId":"u6","ttl":1e3}`, `{"userId":"u6","ttl":1000}`, 1000 * time.Second},
	} {
		status, answer, _ := r.post(t, "/api/vultr/valkey/session/"+tc.id, tc.body)
		if status != 200 || !isAppSuccess(answer) {
			t.Errorf("%s: %d %s", tc.id, status, answer)
			continue
		}
		key := r.prefix + "session:" + tc.id
		got, err := r.redis.Get(ctx, key).Result()
		ttl := r.redis.TTL(ctx, key).Val()
		if err != nil || got != tc.stored || ttl > tc.ttl || ttl < tc.ttl-5*time.Second {
			t.Errorf("%s: stored %q with TTL %v (%v); want %q for %v", tc.id, got, ttl, err, tc.stored, tc.ttl)
		}
	}
	if n := count(r.app, "session.set"); n != 0 {
		t.Errorf("the app saw %d session saves; want 0", n)
	}
}

// TestStoreMemoryRefusedAsApp: a memory the batch endpoint refuses is
// answered as the app's own store-memory answers it: its field names,
// the caller's requestId (adapted from a write-path review's test; the
// batch endpoint's error named memories.0.text and its own requestId).
func TestStoreMemoryRefusedAsApp(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms"})
	_, originAddr := startOrigin(t)
	const body = `{"userId":"u","text":""}`
	app := get(t, rawClient(originAddr), "POST", "/api/raindrop/store-memory", "body", body, "X-Request-Id", "rid-1")
	defer fasthttp.ReleaseResponse(app)
	px := get(t, r.c, "POST", "/api/raindrop/store-memory", "body", body, "X-Request-Id", "rid-1")
	defer fasthttp.ReleaseResponse(px)
	if px.StatusCode() != app.StatusCode() || !strings.Contains(string(px.Body()), `"requestId":"rid-1"`) ||
		!strings.Contains(string(px.Body()), `"field":"text"`) {
		t.Errorf("Sheepdog %d %s\napp      %d %s", px.StatusCode(), px.Body(), app.StatusCode(), app.Body())
	}
}

// TestBatchShutdownGraceAbortsHTTPFlush: a batch call to an app that does
// not answer is given up when shutdown's grace runs out: Shutdown returns
// soon after the grace, not an upstream timeout later, and the caller is
// answered 502 (its write may have landed), not left to the timeout.
func TestBatchShutdownGraceAbortsHTTPFlush(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	origin, asked := startRawOriginFunc(t, func(*fasthttp.Request) (string, bool) {
		<-release
		return "HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"results\":[1]}", true
	})
	cfg, err := configs.Parse("grace.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 4s}
routes:
  - name: store-memory
    match: {method: POST, path: /api/raindrop/store-memory}
    batch: {sink: http, url: /batch, max_wait: 5ms}
`, origin)))
	if err != nil {
		t.Fatal(err)
	}
	p, addr, served := serveUntilShutdown(t, cfg)
	c := rawClient(addr)
	type answer struct {
		status int
		code   string
		at     time.Time
	}
	got := make(chan answer, 1)
	go func() {
		resp := get(t, c, "POST", "/api/raindrop/store-memory", "body", `{"text":"t"}`)
		got <- answer{resp.StatusCode(), string(resp.Body()), time.Now()}
		fasthttp.ReleaseResponse(resp)
	}()
	for deadline := time.Now().Add(2 * time.Second); asked.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the batch never reached the app")
		}
	}

	const grace = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	p.Shutdown(ctx) //nolint:errcheck // the grace runs out: that is the test
	if took := time.Since(start); took > grace+700*time.Millisecond {
		t.Errorf("Shutdown took %v with a grace of %v", took.Round(time.Millisecond), grace)
	}
	select {
	case a := <-got:
		if a.status != fasthttp.StatusBadGateway {
			t.Errorf("the caller got %d %s, want 502", a.status, a.code)
		}
		if d := a.at.Sub(start); d > grace+700*time.Millisecond {
			t.Errorf("the caller was answered %v after shutdown began (grace %v)", d.Round(time.Millisecond), grace)
		}
	case <-time.After(5 * time.Second):
		t.Error("the caller was never answered")
	}
	<-served
}

// TestBatchPostgresMaxBytes: a postgres route's max_bytes bounds its
// batches as every other sink's does. Each order here is over half of
// max_bytes, so no batch may hold two.
func TestBatchPostgresMaxBytes(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms",
		orders: "max_bytes: 150\n      max_items: 1000\n      max_wait: 200ms"})
	const body = `{"user_id":"user_1","items":[{"product_id":"p1","quantity":2,"price":19.99,"size":"M"}],"total_amount":39.98}`
	const n = 20
	burst(n, func(int) {
		if status, answer, _ := r.post(t, "/api/vultr/postgres/orders", body); status != 200 {
			t.Errorf("order: %d %s", status, answer)
		}
	})
	s := r.batchStats(t, "create-order")
	if s.Items != n || s.Batches != n {
		t.Errorf("%d items in %d batches (mean %.1f): max_bytes 150 holds one order of %d bytes a batch",
			s.Items, s.Batches, s.MeanBatch, len(body))
	}
}

// storeMemoryBurst sends 20 store-memory writes at once through an http
// sink whose batch block holds endpoint (url, wrap, split), checks each
// answer, and returns the route's batch counters.
func storeMemoryBurst(t *testing.T, originAddr, endpoint string, check func(*fasthttp.Response)) BatchStats {
	t.Helper()
	cfg, err := configs.Parse("endpoint.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s}
routes:
  - name: store-memory
    match: {method: POST, path: /api/raindrop/store-memory}
    batch: {sink: http, %s, max_wait: 20ms}
`, originAddr, endpoint)))
	if err != nil {
		t.Fatal(err)
	}
	_, addr, adminAddr := startProxy(t, cfg)
	c := rawClient(addr)
	burst(storeMemoryBurstN, func(i int) {
		resp := get(t, c, "POST", "/api/raindrop/store-memory", "body", fmt.Sprintf(`{"text":"t%d"}`, i))
		defer fasthttp.ReleaseResponse(resp)
		check(resp)
	})
	return (&batchRig{admin: rawClient(adminAddr)}).batchStats(t, "store-memory")
}

const storeMemoryBurstN = 20

// TestBatchEndpointRedirectNotSplit: a batch endpoint that answers a
// redirect says nothing about any item: the batch is not split into
// more calls, each failing the same way; every caller gets 502.
func TestBatchEndpointRedirectNotSplit(t *testing.T) {
	app, originAddr := startOrigin(t)
	s := storeMemoryBurst(t, originAddr, `url: "/__origin/echo?status=307"`, func(resp *fasthttp.Response) {
		errorBody(t, resp, 502, codeBatchFailed)
	})
	if calls := count(app, "echo"); calls != uint64(s.Batches) {
		t.Errorf("%d calls for %d batches: a redirect was split", calls, s.Batches)
	}
}
